"""dlib's ResNet descriptor in helper processes (``models.dlib_processes``).

``compute_face_descriptor`` holds Python's GIL for its whole call (~80-100 ms a face here), so
while it runs no other thread of the process runs: not the other executor thread, not the event
loop (``/health`` waited up to ~160 ms behind two recognize clients), and one worker process
embeds on one core. Here each call's aligned chips go to an idle helper process over a pipe
(150 x 150 x 3 bytes a face, in; 128 float32 a face, out): the calling thread waits on the pipe
with the GIL released, and as many calls run at once as there are helpers.

A helper is ``python -m facerec.inference.embedders.dlib_processes ENCODER_PATH``: it loads the
network, says it is ready, then answers frames until its input closes (the parent is gone or
closed it). A helper that dies mid-call is replaced and the call tried once more on the new one;
a call the helper itself refuses (dlib raised) raises :class:`ModelLoadError` in the caller.
"""

from __future__ import annotations

import contextlib
import queue
import select
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import IO

import numpy as np
from numpy.typing import NDArray

from facerec.errors import ModelLoadError

CHIP_SHAPE = (150, 150, 3)
CHIP_BYTES = 150 * 150 * 3
DIM = 128
READY = b"ready\n"
REQUEST = struct.Struct("<II")  # chips, jitters
ANSWER = struct.Struct("<BI")  # 0: vectors follow (count); 1: an error message follows (bytes)
START_TIMEOUT_S = 60.0


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("the pipe closed")
    return data


def serve(encoder_path: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A helper's loop: frames in, descriptors out, until ``stdin`` closes."""
    import dlib

    encoder = dlib.face_recognition_model_v1(encoder_path)
    stdout.write(READY)
    stdout.flush()
    while True:
        head = stdin.read(REQUEST.size)
        if not head or len(head) != REQUEST.size:
            return
        count, jitters = REQUEST.unpack(head)
        chips = np.frombuffer(_read_exactly(stdin, count * CHIP_BYTES), np.uint8)
        try:
            batch = list(chips.reshape(count, *CHIP_SHAPE))
            vectors = encoder.compute_face_descriptor(batch, num_jitters=jitters)
            out = np.asarray([np.asarray(v) for v in vectors], dtype="<f4").reshape(count, DIM)
        except Exception as exc:  # dlib's own errors: the caller gets them as text
            message = f"{type(exc).__name__}: {exc}".encode()
            stdout.write(ANSWER.pack(1, len(message)) + message)
        else:
            stdout.write(ANSWER.pack(0, count) + out.tobytes())
        stdout.flush()


class _HelperRefusedError(Exception):
    """dlib raised inside the helper (the helper itself is fine)."""


class _Helper:
    def __init__(self, encoder_path: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, encoder_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        started = select.select([self.stdout], [], [], START_TIMEOUT_S)[0]
        if not started or self.stdout.readline() != READY:
            self.close()
            raise ModelLoadError(
                f"the dlib helper process did not start within {START_TIMEOUT_S:g} s",
                model="dlib_resnet",
            )

    def run(self, chips: NDArray[np.uint8], jitters: int) -> NDArray[np.float32]:
        self.stdin.write(REQUEST.pack(len(chips), jitters))
        self.stdin.write(np.ascontiguousarray(chips, dtype=np.uint8).tobytes())
        self.stdin.flush()
        status, size = ANSWER.unpack(_read_exactly(self.stdout, ANSWER.size))
        if status:
            raise _HelperRefusedError(_read_exactly(self.stdout, size).decode(errors="replace"))
        data = _read_exactly(self.stdout, size * DIM * 4)
        return np.frombuffer(data, dtype="<f4").reshape(size, DIM).astype(np.float32)

    def close(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in a call, or never read its closed input
            self.process.kill()
            self.process.wait()


def _close_all(helpers: list[_Helper]) -> None:
    for helper in helpers:
        helper.close()


class ProcessEncoder:
    """``compute_face_descriptor`` as dlib's encoder has it, run by ``processes`` helpers: a call
    takes an idle helper (waiting for one when all are busy) and gives it back after."""

    def __init__(self, encoder_path: str, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._path = encoder_path
        self._closed = False
        self._lock = threading.Lock()
        self._helpers: list[_Helper] = []
        self._idle: queue.SimpleQueue[_Helper] = queue.SimpleQueue()
        try:
            for _ in range(processes):
                self._add(_Helper(encoder_path))
        except BaseException:
            _close_all(self._helpers)
            raise
        self._finalizer = weakref.finalize(self, _close_all, self._helpers)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [helper.process.pid for helper in self._helpers]

    def _add(self, helper: _Helper) -> None:
        with self._lock:
            self._helpers.append(helper)
        self._idle.put(helper)

    def _replace(self, dead: _Helper) -> _Helper:
        with self._lock:
            if dead in self._helpers:
                self._helpers.remove(dead)
        dead.close()
        if self._closed:  # closed under a running call: no new helper behind the finalizer
            raise ModelLoadError("the dlib helper processes were closed", model="dlib_resnet")
        fresh = _Helper(self._path)
        with self._lock:
            self._helpers.append(fresh)
        return fresh

    def compute_face_descriptor(
        self, chips: Sequence[NDArray[np.uint8]], num_jitters: int = 0
    ) -> NDArray[np.float32]:
        if not chips:
            return np.zeros((0, DIM), np.float32)
        batch = np.stack([np.asarray(chip, np.uint8).reshape(CHIP_SHAPE) for chip in chips])
        helper = self._idle.get()
        try:
            try:
                return helper.run(batch, num_jitters)
            except (OSError, EOFError, ValueError):  # it died mid-call: a fresh one tries again
                helper = self._replace(helper)
                return helper.run(batch, num_jitters)
        except _HelperRefusedError as refused:
            raise ModelLoadError(
                f"dlib refused the chips: {refused}", model="dlib_resnet"
            ) from refused
        except (OSError, EOFError, ValueError) as exc:
            raise ModelLoadError(
                f"the dlib helper process failed: {exc}", model="dlib_resnet"
            ) from exc
        finally:
            self._idle.put(helper)  # a dead one is replaced by the next call that meets it

    def close(self) -> None:
        self._closed = True
        self._finalizer()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
