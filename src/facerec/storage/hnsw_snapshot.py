"""One-file snapshots of :class:`~facerec.storage.hnsw_index.HnswIndex`.

Layout (one file, written to a temporary name and renamed, so two processes saving at once
never mix halves)::

    u64 header length | JSON header | u64 keys (one per id) | ids | owners | float32
    projection (dim x projected dims; a projected graph only) | usearch graph | pad to 64 |
    float32 exact rows (quantised or projected graphs only; row = key, released rows zeroed)

The ids (face ids) and their owners (``extra["owners"]``: person ids, in the ids' order) are
UTF-8 text, one per line (keys never hold a line break: ``models.check_person_key``): at a
million faces, splitting them takes a tenth of what parsing them as JSON took (1.2 s).

Loading is I/O bound: the keys and rows are read (or, with ``mmap``, mapped copy-on-write)
straight into NumPy arrays, and the graph is restored from one buffer. The graph is always
copied into memory: a usearch ``view`` cannot take adds or removals. A mapped file is never
written: adds stay in this process's private pages, and the first removal copies the rows into
memory and drops the map before zeroing (see ``ExactRows``), while the registry deletes the
snapshot file itself on the first removal it sees.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import struct
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import numpy as np
from numpy.typing import NDArray

from facerec.storage.huge_pages import recording
from facerec.storage.quantised_rows import ExactRows, KeyPool

if TYPE_CHECKING:
    from facerec.storage.hnsw_index import HnswIndex

FORMAT = 4
READABLE = (3, FORMAT)  # 3: ids and owners in the JSON header (2 never had an orphan list)
_ALIGN = 64
PARTIAL_SUFFIX = ".tmp"  # a snapshot being written (renamed once whole)
H = TypeVar("H", bound="HnswIndex")


def _padding(offset: int) -> int:
    return -offset % _ALIGN


def _lines(values: list[str]) -> bytes:
    text = "\n".join(values).encode()
    if values and text.count(b"\n") != len(values) - 1:
        raise ValueError("a snapshot's ids cannot hold line breaks")
    return text


def write_snapshot(index: HnswIndex, path: Path, extra: dict[str, Any]) -> None:
    """``extra["owners"]``, when there: the owner of each id of ``index`` (those of other
    ids are not kept)."""
    keys = np.fromiter(index._keys.values(), np.uint64, len(index._keys))
    ids = list(index._keys)
    extra = dict(extra)
    owners = extra.pop("owners", None)
    id_lines = _lines(ids)
    owner_lines = b"" if owners is None else _lines([owners.get(face, "") for face in ids])
    graph = index._index.save()
    assert graph is not None  # no path given: the index comes back as bytes
    high = index._pool.high
    rows = index._exact.parts(high) if index._exact is not None else None
    projection = index.projection
    header = json.dumps(
        {
            "format": FORMAT,
            # first: read by peek() without the ids
            "built_faces": index.built_faces,
            "seq": int(extra.get("seq", -1)),
            "dim": index.dim,
            "metric": index.metric,
            "dtype": index.dtype,
            "rescore": index.rescore,
            "graph_dim": index.graph_dim,
            "projected_dim": 0 if projection is None else projection.shape[1],
            "connectivity": index.connectivity,
            "expansion_add": index.expansion_add,
            "threads": index.threads,
            "expansion_search": index.expansion_search,
            "faces": len(ids),
            "ids_bytes": len(id_lines),
            "owners_bytes": None if owners is None else len(owner_lines),
            "orphans": index._orphans.keys.tolist(),
            "graph_bytes": len(graph),
            "rows": 0 if rows is None else sum(len(part) for part in rows),
            "extra": extra,
        }
    ).encode()
    # Owner-only: a snapshot holds every vector of a gallery (mkstemp files are 0600).
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=PARTIAL_SUFFIX)
    with contextlib.suppress(OSError):  # held until renamed: see abandoned()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(struct.pack("<Q", len(header)))
            handle.write(header)
            handle.write(keys.astype("<u8").tobytes())
            handle.write(id_lines)
            handle.write(owner_lines)
            if projection is not None:
                handle.write(np.ascontiguousarray(projection, "<f4").data)
            handle.write(memoryview(graph))
            if rows is not None:
                handle.write(b"\0" * _padding(handle.tell()))
                for part in rows:
                    handle.write(np.ascontiguousarray(part, "<f4").data)
            handle.flush()
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def abandoned(path: Path, stale_s: float) -> bool:
    """Whether ``path``, a partial snapshot, was left by a writer that stopped (a crash): its
    writer holds a ``flock`` on it until it is renamed, so an unlocked one has none; on a file
    system without locks, one untouched for ``stale_s`` seconds."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone (renamed or deleted) meanwhile
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return time.time() - os.fstat(fd).st_mtime > stale_s
    finally:
        os.close(fd)


_PEEK = re.compile(rb'^\{"format": \d+, "built_faces": (\d+), "seq": (-?\d+),')


def peek(path: Path) -> tuple[int, int] | None:
    """(faces the snapshot's graph was built with, its change-log seq), from the start of its
    header (the whole header, ids included, for a snapshot written before those came first);
    None when there is no readable snapshot."""
    try:
        with path.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            found = _PEEK.match(handle.read(min(size, 96)))
            if found is not None:
                return int(found.group(1)), int(found.group(2))
            handle.seek(8)
            header = json.loads(handle.read(size))
            built = int(header.get("built_faces", len(header["ids"])))
            return built, int(header["extra"].get("seq", -1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error):
        return None


def read_snapshot(
    cls: type[H], path: Path, *, mmap: bool, huge_pages: bool = True
) -> tuple[H, dict[str, Any]]:
    from usearch.index import Index

    with path.open("rb") as handle:
        raw_size = handle.read(8)
        if len(raw_size) != 8:
            raise ValueError(f"{path} is truncated")
        (size,) = struct.unpack("<Q", raw_size)
        header = json.loads(handle.read(size))
        if header.get("format") not in READABLE:
            raise ValueError(f"{path}: snapshot format {header.get('format')}, not {FORMAT}")
        if "orphans" not in header:  # its faces were never checked: rebuilt, which checks them
            raise ValueError(f"{path}: written before graphs kept an orphan list")
        extra = dict(header["extra"])
        dim = int(header["dim"])
        if "ids" in header:  # format 3
            ids: list[str] = header["ids"]
            keys = np.fromfile(handle, "<u8", len(ids)).astype(np.uint64)
        else:
            faces = int(header["faces"])
            keys = np.fromfile(handle, "<u8", faces).astype(np.uint64)
            ids = _read_lines(handle, int(header["ids_bytes"]), faces, path)
            if header["owners_bytes"] is not None:
                owners = _read_lines(handle, int(header["owners_bytes"]), faces, path)
                found = dict(zip(ids, owners, strict=True))
                if "" in owners:  # ids saved without an owner
                    found = {face: owner for face, owner in found.items() if owner}
                extra["owners"] = found
        projected = int(header.get("projected_dim", 0))
        projection = None
        if projected:
            projection = np.fromfile(handle, "<f4", dim * projected).astype(np.float32)
            if projection.size != dim * projected:
                raise ValueError(f"{path} is truncated")
            projection = projection.reshape(dim, projected)
        # (a bytearray would be zeroed first: 0.2 s for a million faces' graph)
        graph = np.empty(int(header["graph_bytes"]), np.uint8).data
        if handle.readinto(graph) != len(graph) or keys.size != len(ids):
            raise ValueError(f"{path} is truncated")
        rows_offset = handle.tell() + _padding(handle.tell())
        count = int(header["rows"])
        rows: np.ndarray[Any, np.dtype[np.float32]] | None = None
        if count and mmap:
            rows = np.memmap(path, np.float32, "c", rows_offset, (count, dim))
        elif count:
            handle.seek(rows_offset)
            rows = np.fromfile(handle, "<f4", count * dim).astype(np.float32, copy=False)
            if rows.size != count * dim:
                raise ValueError(f"{path} is truncated")
            rows = rows.reshape(count, dim)
    with recording() as graph_memory:
        restored = Index.restore(graph)
    if restored is None:
        raise ValueError(f"{path} is not a usearch index")
    del graph
    index = cls(
        dim,
        header["metric"],
        threads=int(header["threads"]),
        dtype=header["dtype"],
        rescore=int(header["rescore"]),
        graph_dim=int(header.get("graph_dim", 0)),
        connectivity=int(header.get("connectivity", 16)),
        expansion_add=int(header.get("expansion_add", 128)),
        huge_pages=huge_pages,
    )
    index.graph_memory = graph_memory
    index.projection = projection
    restored.expansion_search = int(header["expansion_search"])  # type: ignore[misc]
    index._index = restored
    index._keys = dict(zip(ids, keys.tolist(), strict=True))
    index._ids = {key: face_id for face_id, key in index._keys.items()}
    index._pool = KeyPool(keys)
    index._free = max(0, int(restored.stats.nodes) - len(restored))
    index.built_faces = int(header.get("built_faces", len(ids)))
    if index._exact is not None and index._pool.high:  # (an empty index keeps its fresh rows)
        if rows is None or len(rows) < index._pool.high:
            raise ValueError(f"{path}: exact rows missing")
        index._exact = ExactRows(dim, index.metric, rows)
    if len(restored) != len(index._keys):
        raise ValueError(f"{path}: {len(restored)} vectors but {len(index._keys)} ids")
    _restore_orphans(index, np.asarray(header["orphans"], np.uint64))
    index.back_with_huge_pages()
    return index, extra


def _read_lines(handle: BinaryIO, size: int, count: int, path: Path) -> list[str]:
    data = handle.read(size)
    lines = data.decode().split("\n") if count else []
    if len(data) != size or len(lines) != count:
        raise ValueError(f"{path} is truncated")
    return lines


def _restore_orphans(index: HnswIndex, keys: NDArray[np.uint64]) -> None:
    """The orphan list, its vectors from the exact rows or, for an f32 graph, from the graph."""
    if not len(keys):
        return
    if not np.isin(keys, np.fromiter(index._ids, np.uint64, len(index._ids))).all():
        raise ValueError("snapshot orphans are not faces of the index")
    if index._exact is not None:
        vectors = index._exact.rows(keys)
    else:
        vectors = np.asarray(index._index.get(keys, dtype=np.float32), np.float32)
    sketch = None if index.projection is None else index._graph_rows(vectors)
    index._orphans.add(keys, vectors, sketch)
