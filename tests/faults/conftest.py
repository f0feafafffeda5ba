"""Private servers for the fault tests, each on a spare 127.0.0.1 port, started and stopped by PID.

- PostgreSQL: ``initdb`` + ``postgres`` from /usr/lib/postgresql/<version>/bin (or the pgserver
  wheel's binaries) in a temporary directory; as root it runs as the ``postgres`` (or
  ``pgserver``) system user, since PostgreSQL refuses to run as root;
- Redis: ``redis-server --save '' --appendonly no``;
- the service: a real uvicorn process (``facerec.app:serve_app``) configured by environment.

Missing binaries skip on a developer machine and fail in CI (``FACEREC_TEST_STRICT=1``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, unavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _postgres_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    with contextlib.suppress(ImportError):
        import pgserver._commands as commands  # the wheel's own PostgreSQL 16

        candidates.append(Path(commands.POSTGRES_BIN_PATH))
    for path in candidates:
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    return None


def _run_as() -> str | None:
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

    def log_tail(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, user=self.user, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = _postgres_bin()
    if binaries is None:
        unavailable("PostgreSQL binaries (initdb, postgres)", "apt-get install postgresql-15")
    user = _run_as()
    if os.geteuid() == 0 and user is None:
        unavailable("a non-root user to run PostgreSQL", "create the postgres system user")
    root = Path(tempfile.mkdtemp(prefix="facerec-faults-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PrivatePostgres(binaries, root, user)
    try:
        server.init()
        server.start()
    except Exception as exc:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        unavailable("a private PostgreSQL", f"it failed to start: {exc}")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "apt-get install redis-server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = subprocess.Popen(
        [*command, "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_port(port, 15):
        stop_process(process)
        unavailable("redis-server", "it did not start")
    server = PrivateRedis(port, process)
    yield server
    stop_process(server.process)


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


@pytest.fixture(scope="module")
def service(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("faults-service")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FACEREC_") or key.startswith("FACEREC_TEST")
    }
    env.update(
        {
            "FACEREC_DATABASE_URL": private_postgres.url,
            "FACEREC_REDIS_URL": private_redis.url,
            "FACEREC_SERVER__LOG_DIR": str(work / "logs"),
            "FACEREC_MODELS__MODEL_DIR": str(work / "models"),
            "FACEREC_MODELS__PRELOAD": '["retinaface","dlib_resnet"]',
            "FACEREC_INDEX__INDEX_DIR": str(work / "index"),
            "PYTHONPATH": str(REPO),
        }
    )
    server = Service(env, work)
    server.start()
    yield server
    server.stop()
