"""Per-thread reusable arrays for the network inputs built on every request.

With the fixed mmap threshold (:mod:`facerec.cache.allocator`, 4 MiB) every fresh array of that
size or more is a new mapping: its pages fault in on the first write (~1 ms per 5 MB) and go back to
the kernel when it is freed. A detector's letterbox canvas and input tensor have the same size
request after request, so each thread keeps one buffer per slot and writes over it.

A scratch array is valid until the same thread asks for the same slot again: only code that
builds it, hands it to a session and is done with it when the session returns may use one (a
caller blocked in a micro-batch, whose array another thread runs, counts as using it). Arrays
over ``MAX_BYTES`` are fresh ones, not kept, so a rare large photo does not pin its buffer.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

MAX_BYTES = 8 * 2**20  # a 640 × 640 float32 tensor is 4.7 MiB; RetinaFace at ~960 × 720 fits

_LOCAL = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """An uninitialised array of ``shape`` for this thread's ``slot`` (its old contents may be
    anywhere in it: write every element the caller reads)."""
    kind = np.dtype(dtype)
    nbytes = math.prod(shape) * kind.itemsize
    if nbytes > MAX_BYTES:
        return np.empty(shape, kind)
    pool: dict[str, NDArray[np.uint8]] = _LOCAL.__dict__.setdefault("pool", {})
    flat = pool.get(slot)
    if flat is None or flat.nbytes < nbytes:
        flat = pool[slot] = np.empty(nbytes, np.uint8)
    return flat[:nbytes].view(kind).reshape(shape)


def scratch_bytes() -> int:
    """Bytes this thread keeps (tests)."""
    pool: dict[str, NDArray[np.uint8]] = _LOCAL.__dict__.get("pool", {})
    return sum(a.nbytes for a in pool.values())
