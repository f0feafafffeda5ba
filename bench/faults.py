"""Private servers and a bounded client load, shared by tests/faults and bench/bench_reliability.py.

- PostgreSQL: ``initdb`` + ``postgres`` from /usr/lib/postgresql/<version>/bin (or the pgserver
  wheel's binaries) in a temporary directory; as root it runs as the ``postgres`` (or
  ``pgserver``) system user, since PostgreSQL refuses to run as root;
- Redis: ``redis-server --save '' --appendonly no``;
- the service: a real uvicorn process (``facerec.app:serve_app``) configured by environment;
- :class:`Load`: client threads sending a fixed cycle of requests, counting statuses, latencies
  and every acknowledged write, so a database audit can prove none was lost.

Everything listens on 127.0.0.1 on a spare port; every process is started and stopped by its PID.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.server import free_port

REPO = Path(__file__).resolve().parent.parent
API = "/api/face-recognition"
DETECT = "/api/face-detection/detect"


class UnavailableError(RuntimeError):
    """A server could not be provided; ``what`` is missing and ``how`` says the fix."""

    def __init__(self, what: str, how: str) -> None:
        super().__init__(f"{what} is not available: {how}")
        self.what = what
        self.how = how


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal one process we started (by its PID) and wait for it; SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def poll(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    with contextlib.suppress(ImportError):
        import pgserver._commands as commands  # the wheel's own PostgreSQL 16

        candidates.append(Path(commands.POSTGRES_BIN_PATH))
    for path in candidates:
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    return None


def run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


@dataclass
class PrivatePostgres:
    bin: Path
    root: Path
    user: str | None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        data = self.root / "data"
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])

    def start(self) -> None:
        command = [
            str(self.bin / "postgres"),
            "-D",
            str(self.root / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        log = (self.root / "postgres.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, user=self.user)
        if not wait_port(self.port, 30):
            raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are terminated, as in a real restart."""
        if self.process is not None:
            stop_process(self.process, signal.SIGINT)
            self.process = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, user=self.user, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])


def start_private_postgres() -> PrivatePostgres:
    """A fresh cluster, started; :class:`UnavailableError` when that cannot be done here."""
    binaries = postgres_bin()
    if binaries is None:
        raise UnavailableError(
            "PostgreSQL binaries (initdb, postgres)", "apt-get install postgresql-15"
        )
    user = run_as()
    if os.geteuid() == 0 and user is None:
        raise UnavailableError(
            "a non-root user to run PostgreSQL", "create the postgres system user"
        )
    root = Path(tempfile.mkdtemp(prefix="facerec-faults-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PrivatePostgres(binaries, root, user)
    try:
        server.init()
        server.start()
    except Exception as exc:
        server.close()
        raise UnavailableError("a private PostgreSQL", f"it failed to start: {exc}") from exc
    return server


# --- Redis ------------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    binary: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, on the same port) an empty, non-persistent server."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [*command, "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_port(self.port, 15):
            self.stop()
            raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def start_private_redis() -> PrivateRedis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise UnavailableError("redis-server", "apt-get install redis-server")
    server = PrivateRedis(binary)
    try:
        server.start()
    except RuntimeError as exc:
        raise UnavailableError("redis-server", str(exc)) from exc
    return server


# --- the service ------------------------------------------------------------------------------


def service_env(database_url: str, redis_url: str, work: Path) -> dict[str, str]:
    """This environment without FACEREC_ settings (test switches kept), on the given servers."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FACEREC_") or key.startswith("FACEREC_TEST")
    }
    env.update(
        {
            "FACEREC_DATABASE_URL": database_url,
            "FACEREC_REDIS_URL": redis_url,
            "FACEREC_SERVER__LOG_DIR": str(work / "logs"),
            "FACEREC_MODELS__MODEL_DIR": str(work / "models"),
            "FACEREC_MODELS__PRELOAD": '["retinaface","dlib_resnet"]',
            "FACEREC_INDEX__INDEX_DIR": str(work / "index"),
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@dataclass
class Service:
    """``facerec serve`` as uvicorn runs it, in its own process (killable, restartable)."""

    env: dict[str, str]
    cwd: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "facerec.app:serve_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        log = (self.cwd / "service.log").open("ab")
        self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the service did not become ready: {self.log_tail()}")

    def kill(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM)
            self.process = None

    def log_tail(self) -> str:
        path = self.cwd / "service.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def ready_status(service: Service) -> int:
    """/ready's status; 0 when the service does not answer."""
    try:
        return httpx.get(service.base + "/ready", timeout=5).status_code
    except httpx.HTTPError:
        return 0


# --- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float  # time.monotonic() when the answer (or the connection error) came
    route: str
    outcome: str  # "ok" (200), "503", "4xx", "5xx" or "conn" (no HTTP answer)


def _default_images() -> list[bytes]:
    from tests.images import grace_hopper_jpeg

    return [grace_hopper_jpeg()]


@dataclass
class Load:
    """Client threads going round ``cycle`` until stopped or ``max_requests`` are sent.

    Operations: ``enroll`` (a new person), ``enroll-more`` (another face of one of the thread's
    persons), ``recognize``, ``compare``, ``detect``, ``list`` (persons) and ``erase`` (the thread's
    oldest person). Every 200 enrollment and erasure is kept for :func:`audit_database`; every
    answer other than 200 or a 503 with a code in ``allowed_503`` is ``unexpected``.
    """

    base: str
    threads: int = 3
    max_requests: int = 600
    cycle: Sequence[str] = ("enroll", "recognize")
    shuffle: bool = False  # each thread goes round its own shuffled copy of ``cycle``
    images: Sequence[bytes] = field(default_factory=_default_images)  # one face each
    group_photo: bytes | None = None  # several faces, for detect
    vary: bool = False  # append a nonce to each image: no answer comes from the cache
    think_s: float = 0.0
    seed: int = 0
    allowed_503: frozenset[str] = frozenset({"storage_unavailable"})
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: list[Event] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # person ids enrolled (200)
    faces: dict[str, str] = field(default_factory=dict)  # face id (200) -> person id
    erased: set[str] = field(default_factory=set)  # person ids erased (200)
    erase_unsettled: set[str] = field(default_factory=set)  # erasure tried, not acknowledged
    unexpected: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def _image(self, rng: random.Random, data: bytes | None = None) -> str:
        data = data if data is not None else rng.choice(self.images)
        if self.vary:  # after the image's end marker: decoded the same, hashed differently
            data += b"nonce" + rng.randbytes(8)
        return base64.b64encode(data).decode("ascii")

    def _send(
        self,
        client: httpx.Client,
        route: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        accept: Sequence[int] = (),
    ) -> tuple[httpx.Response | None, str]:
        """The answer (None: no HTTP answer) and its outcome, as :class:`Event` spells it."""
        started = time.perf_counter()
        try:
            response = client.request(method, path, json=body)
        except httpx.HTTPError as exc:  # the service itself went away
            with self._lock:
                self.statuses[f"{route} {type(exc).__name__}"] += 1
                self.events.append(Event(time.monotonic(), route, "conn"))
            return None, "conn"
        elapsed_ms = (time.perf_counter() - started) * 1000
        status, code = response.status_code, ""
        if status != 200:
            with contextlib.suppress(ValueError, AttributeError):
                code = str(response.json().get("error", {}).get("code", ""))
        outcome = "ok" if status == 200 else "503" if status == 503 else f"{status // 100}xx"
        with self._lock:
            self.statuses[f"{route} {status} {code}".strip()] += 1
            self.events.append(Event(time.monotonic(), route, outcome))
            if status == 200:
                self.latencies[route].append(elapsed_ms)
            elif status not in accept and not (status == 503 and code in self.allowed_503):
                self.unexpected.append(f"{route} {status} {response.text[:300]}")
        return response, outcome

    def _add_face(
        self, client: httpx.Client, rng: random.Random, route: str, person_id: str
    ) -> tuple[str | None, str]:
        """(the face id when answered 200, the outcome)."""
        body = {
            "person_name": "Load",
            "person_id": person_id,
            "face_image_base64": self._image(rng),
        }
        response, outcome = self._send(client, route, "POST", API + "/add-face", body)
        if response is None or response.status_code != 200:
            return None, outcome
        return str(response.json()["face_id"]), outcome

    def _enroll(self, client: httpx.Client, rng: random.Random, mine: list[str]) -> str:
        person_id = f"load-{uuid.uuid4().hex[:12]}"
        face_id, outcome = self._add_face(client, rng, "enroll", person_id)
        if face_id is not None:
            with self._lock:
                self.acknowledged.append(person_id)
                self.faces[face_id] = person_id
            mine.append(person_id)
        return outcome

    def _enroll_more(self, client: httpx.Client, rng: random.Random, mine: list[str]) -> str:
        if not mine:
            return self._enroll(client, rng, mine)
        person_id = rng.choice(mine)
        face_id, outcome = self._add_face(client, rng, "enroll-more", person_id)
        if face_id is not None:
            with self._lock:
                self.faces[face_id] = person_id
        return outcome

    def _erase(self, client: httpx.Client, rng: random.Random, mine: list[str]) -> str:
        if len(mine) < 2:  # keep one person per thread to add faces to
            return self._enroll(client, rng, mine)
        person_id = mine.pop(0)
        retried = person_id in self.erase_unsettled
        path = f"{API}/persons/{person_id}"
        accept = (404,) if retried else ()
        response, outcome = self._send(client, "erase", "DELETE", path, accept=accept)
        status = response.status_code if response is not None else 0
        if status == 200 or (retried and status == 404):
            with self._lock:  # a 404 after an unanswered try: that try had erased it
                self.erased.add(person_id)
                self.erase_unsettled.discard(person_id)
            return "ok"
        if status != 404:  # no answer, or a 503: try again later
            with self._lock:
                self.erase_unsettled.add(person_id)
            mine.append(person_id)
        return outcome

    def _query(self, client: httpx.Client, rng: random.Random, op: str) -> str:
        body: dict[str, Any] | None
        if op == "recognize":
            path, body = API + "/recognize", {"face_image_base64": self._image(rng)}
        elif op == "compare":
            path = API + "/compare"
            body = {"face1_image_base64": self._image(rng), "face2_image_base64": self._image(rng)}
        elif op == "detect":
            group = self.group_photo if rng.random() < 0.5 else None
            path, body = DETECT, {"image_base64": self._image(rng, group)}
        elif op == "list":
            path, body = API + "/persons?limit=20", None
        else:
            raise ValueError(f"unknown operation {op!r}")
        return self._send(client, op, "GET" if body is None else "POST", path, body)[1]

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        mine: list[str] = []  # this thread's persons, not erased
        cycle = list(self.cycle)
        if self.shuffle:
            rng.shuffle(cycle)
        writes = {"enroll": self._enroll, "enroll-more": self._enroll_more, "erase": self._erase}
        with httpx.Client(base_url=self.base, timeout=60) as client:
            step = 0
            while not self._stop.is_set() and self.total < self.max_requests:
                op = cycle[step % len(cycle)]
                step += 1
                write = writes.get(op)
                outcome = write(client, rng, mine) if write else self._query(client, rng, op)
                if outcome == "conn":
                    time.sleep(0.05)
                elif outcome != "ok":  # a client honouring Retry-After, shortened
                    time.sleep(0.2)
                if self.think_s:
                    time.sleep(self.think_s)


# --- the audit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audit:
    """Acknowledged writes checked against the database after a load."""

    persons: int  # persons acknowledged (200) and not erased
    faces: int  # faces acknowledged (200) whose person was not erased
    erased: int  # erasures acknowledged (200)
    lost_persons: int  # of ``persons``: missing, or left without any face
    lost_faces: int  # of ``faces``: missing
    erased_present: int  # of ``erased``: still in the database
    without_faces: int  # persons without any face, in the whole database

    @property
    def lost(self) -> int:
        return self.lost_persons + self.lost_faces

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.erased_present == 0 and self.without_faces == 0


async def _audit(url: str, load: Load) -> Audit:
    import asyncpg

    with load._lock:
        erased = set(load.erased)
        persons = set(load.acknowledged) - erased - load.erase_unsettled
        faces = {face for face, person in load.faces.items() if person in persons}
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        with_faces = await conn.fetch(
            "SELECT p.id FROM persons p JOIN faces f ON f.person_id = p.id"
            " WHERE p.id = ANY($1::text[]) GROUP BY p.id",
            list(persons),
        )
        found_faces = await conn.fetch(
            "SELECT id FROM faces WHERE id = ANY($1::text[])", list(faces)
        )
        still = await conn.fetchval(
            "SELECT COUNT(*) FROM persons WHERE id = ANY($1::text[])", list(erased)
        )
        orphans = await conn.fetchval(
            "SELECT COUNT(*) FROM persons p"
            " WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)"
        )
    finally:
        await conn.close()
    return Audit(
        persons=len(persons),
        faces=len(faces),
        erased=len(erased),
        lost_persons=len(persons - {r["id"] for r in with_faces}),
        lost_faces=len(faces - {r["id"] for r in found_faces}),
        erased_present=int(still),
        without_faces=int(orphans),
    )


def audit_database(url: str, load: Load) -> Audit:
    """Every write ``load`` saw acknowledged, looked up in the database at ``url``."""
    return asyncio.run(_audit(url, load))
