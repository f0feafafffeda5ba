"""The Milvus calls the ``milvus`` index backend makes, with Milvus errors turned into ours.

One Milvus collection per facerec (collection, embedding space): spaces differ in dimension and
metric, and a collection per tenant key keeps tenants apart at the storage level (dropping one
drops its data). Names are ``<prefix>_<collection>_<space>_<hash>``, with every character Milvus
refuses replaced by ``_`` and a hash of the exact pair so that two keys never share a name.

pymilvus is synchronous: every call runs in a worker thread. Any failure of a call (server
down, timeout, refused request) becomes :class:`~facerec.errors.StorageUnavailableError` with
code ``milvus_unavailable``, so clients get a 503 with ``Retry-After`` and never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from facerec.errors import StorageUnavailableError
from facerec.storage.index_options import MilvusOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import FaceVector

log = logging.getLogger(__name__)

T = TypeVar("T")
ShardKey = tuple[str, str]
STATE_SUFFIX = "_state"  # <prefix>__state: never a face collection (those have 3 more parts)
MAX_TOPK = 16_384  # Milvus' largest limit for one search
_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_METRICS = {"l2": "L2", "cosine": "COSINE"}
_OWNED = "collection:"  # state rows naming a face collection we created, and its key


def collection_name(prefix: str, collection: str, space: str) -> str:
    """The Milvus collection of (collection, space): letters, digits and ``_`` only."""
    digest = hashlib.sha1(f"{collection}\0{space}".encode()).hexdigest()[:16]
    readable = [_UNSAFE.sub("_", part).strip("_")[:48] or "x" for part in (collection, space)]
    return f"{prefix}_{readable[0]}_{readable[1]}_{digest}"


def milvus_distance(metric: str, raw: float) -> float:
    """Milvus' L2 is squared and its COSINE a similarity: give what the other backends give
    (L2, or 1 - cos)."""
    return float(np.sqrt(max(raw, 0.0))) if metric == "l2" else 1.0 - raw


class MilvusGateway:
    """A pymilvus client, opened on first use, that speaks in facerec terms."""

    def __init__(self, options: MilvusOptions, *, default_dir: Path | None = None) -> None:
        self.options = options
        self.uri = options.uri or str((default_dir or Path("data")) / "milvus.db")
        self._client: Any = None
        self._connecting = threading.Lock()
        self._loaded: set[str] = set()

    @property
    def embedded(self) -> bool:
        """milvus-lite (a local ``.db`` path) rather than a server."""
        return "://" not in self.uri

    def name(self, collection: str, space: str) -> str:
        return collection_name(self.options.collection_prefix, collection, space)

    @property
    def state_name(self) -> str:
        return f"{self.options.collection_prefix}_{STATE_SUFFIX}"

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(client, ...)`` in a worker thread; Milvus failures → ``milvus_unavailable``."""

        def run() -> T:
            return fn(self._connect(), *args, **kwargs)

        try:
            return await asyncio.to_thread(run)
        except StorageUnavailableError:
            raise
        except Exception as exc:  # pymilvus, grpc and socket errors all mean the same to a client
            log.warning("milvus %s failed: %s: %s", what, type(exc).__name__, exc)
            raise StorageUnavailableError(
                "the vector index (Milvus) is unavailable; retry shortly",
                code="milvus_unavailable",
                operation=what,
                reason=type(exc).__name__,
            ) from exc

    def _connect(self) -> Any:
        with self._connecting:
            return self._client or self._open()

    def _open(self) -> Any:
        if self._client is None:
            try:
                from pymilvus import MilvusClient  # type: ignore[import-untyped]
            except ImportError as exc:
                raise StorageUnavailableError(
                    "index backend milvus needs pymilvus: pip install 'facerec[milvus]'",
                    code="milvus_unavailable",
                    reason="pymilvus is not installed",
                ) from exc
            if self.embedded:
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"uri": self.uri, "timeout": self.options.timeout_s}
            if self.options.token:
                kwargs["token"] = self.options.token
            if self.options.db_name:
                kwargs["db_name"] = self.options.db_name
            self._client = MilvusClient(**kwargs)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        self._loaded.clear()
        if client is not None:
            try:
                await asyncio.to_thread(client.close)
            except Exception as exc:  # closing a connection to a server that is gone
                log.info("closing the Milvus client: %s", exc)

    # ---- collections -------------------------------------------------------------------------

    async def face_collections(self) -> dict[str, ShardKey]:
        """Every face collection we created that exists → the (collection, space) it holds
        (recorded in the state collection before the collection is created)."""
        names = set(await self.call("list_collections", lambda c: list(c.list_collections())))
        found: dict[str, ShardKey] = {}
        for key, _, text in await self._state_rows():
            if key.startswith(_OWNED) and key[len(_OWNED) :] in names:
                pair = json.loads(text)
                found[key[len(_OWNED) :]] = (str(pair["collection"]), str(pair["space"]))
        return found

    async def ensure_faces(self, collection: str, spec: EmbeddingSpace, *, m: int, ef: int) -> str:
        """Create (HNSW index, our consistency level) and load the collection of a key."""
        name = self.name(collection, spec.name)
        if name in self._loaded:
            return name
        options = self.options
        await self._write_state_rows(
            [(_OWNED + name, 0, json.dumps({"collection": collection, "space": spec.name}))]
        )

        def create(client: Any) -> None:
            from pymilvus import DataType

            if not client.has_collection(name):
                schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("face_id", DataType.VARCHAR, is_primary=True, max_length=64)
                schema.add_field("person_id", DataType.VARCHAR, max_length=128)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(spec.dim))
                index = client.prepare_index_params()
                index.add_index(
                    field_name="vector",
                    index_type="HNSW",
                    metric_type=_METRICS[spec.metric],
                    params={"M": m, "efConstruction": ef},
                )
                client.create_collection(
                    name,
                    schema=schema,
                    index_params=index,
                    consistency_level=options.consistency,
                    num_shards=options.shards,
                )
                log.info("created milvus collection %s for %s/%s", name, collection, spec.name)
            client.load_collection(name)

        await self.call("create_collection", create)
        self._loaded.add(name)
        return name

    async def drop(self, name: str) -> None:
        """Drop a collection (Milvus deletes its segments and index files) and forget it."""
        self._loaded.discard(name)
        state = self.state_name

        def run(client: Any) -> None:
            if client.has_collection(name):
                client.drop_collection(name)
            if name != state and client.has_collection(state):
                client.delete(state, ids=[_OWNED + name])

        await self.call("drop_collection", run)

    # ---- rows --------------------------------------------------------------------------------

    async def upsert(self, name: str, faces: Sequence[FaceVector]) -> None:
        for start in range(0, len(faces), 5_000):
            rows = [
                {"face_id": f.face_id, "person_id": f.person_id, "vector": f.vector.tolist()}
                for f in faces[start : start + 5_000]
            ]
            await self.call("upsert", lambda c, r=rows: c.upsert(name, r))

    async def delete(self, name: str, face_ids: Sequence[str]) -> None:
        """Delete, then flush (the deletion is durable) and ask for a compaction (the deleted
        vectors leave the segments; on a cluster this runs in the background)."""
        if face_ids:

            def erase(client: Any) -> None:
                if client.has_collection(name):
                    client.delete(name, ids=list(face_ids))
                    client.flush(name)
                    client.compact(name)

            await self.call("delete", erase)

    async def search(
        self, name: str, spec: EmbeddingSpace, vector: NDArray[np.float32], limit: int, ef: int
    ) -> list[tuple[str, str, float]]:
        """(person id, face id, distance) of the ``limit`` nearest faces, nearest first."""
        params = {"metric_type": _METRICS[spec.metric], "params": {"ef": max(ef, limit)}}

        def run(client: Any) -> Any:
            return client.search(
                name,
                data=[vector.tolist()],
                limit=limit,
                anns_field="vector",
                output_fields=["person_id"],
                search_params=params,
                consistency_level=self.options.consistency,
            )

        result = await self.call("search", run)
        hits = [
            (
                str(h["entity"]["person_id"]),
                str(h["face_id"] if "face_id" in h else h["id"]),
                milvus_distance(spec.metric, float(h["distance"])),
            )
            for h in (result[0] if result else [])
        ]
        hits.sort(key=lambda hit: hit[2])
        return hits

    async def present(self, name: str, face_ids: Sequence[str]) -> set[str]:
        """Which of ``face_ids`` a query of the collection still returns."""
        rows = await self.call(
            "query",
            lambda c: (
                c.query(name, ids=list(face_ids), output_fields=["face_id"])
                if c.has_collection(name)
                else []
            ),
        )
        return {str(r["face_id"]) for r in rows}

    # ---- where this deployment is in the change log ------------------------------------------

    async def read_state(self) -> dict[str, int]:
        """The stored integers (applied seq, database instance id)."""
        return {k: v for k, v, _ in await self._state_rows() if not k.startswith(_OWNED)}

    async def write_state(self, values: dict[str, int]) -> None:
        await self._write_state_rows([(k, int(v), "") for k, v in values.items()])

    async def _state_rows(self) -> list[tuple[str, int, str]]:
        name = self.state_name

        def read(client: Any) -> list[Any]:
            if not client.has_collection(name):
                return []
            client.load_collection(name)
            fields = ["key", "value", "text"]
            return list(client.query(name, filter='key != ""', output_fields=fields))

        rows = await self.call("read_state", read)
        return [(str(r["key"]), int(r["value"]), str(r["text"])) for r in rows]

    async def _write_state_rows(self, rows: list[tuple[str, int, str]]) -> None:
        name = self.state_name
        data = [{"key": k, "value": v, "text": t, "vector": [0.0, 0.0]} for k, v, t in rows]

        def write(client: Any) -> None:
            from pymilvus import DataType

            if not client.has_collection(name):
                schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=320)
                schema.add_field("value", DataType.INT64)
                schema.add_field("text", DataType.VARCHAR, max_length=1024)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
                index = client.prepare_index_params()
                index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
                client.create_collection(
                    name, schema=schema, index_params=index, consistency_level="Strong"
                )
            client.upsert(name, data)

        await self.call("write_state", write)
