"""Helpers shared by the benchmarks: timing loops and a real ``facerec serve`` process."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil


def timed(fn: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    """Milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run_threads(targets: list[Callable[[], object]]) -> float:
    """Run every target in a thread of its own, all at once; seconds until the last ended."""
    threads = [threading.Thread(target=target) for target in targets]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                rss = self.process.memory_info().rss
                rss += sum(c.memory_info().rss for c in self.process.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def server_env(root: Path, log_level: str = "warning") -> dict[str, str]:
    """The environment of a ``facerec serve`` on ``root``'s files: its SQLite database
    (``bench.db``), logs, model dir and index dir."""
    return dict(
        os.environ,
        FACEREC_DB__URL=f"sqlite+aiosqlite:///{root / 'bench.db'}",
        FACEREC_SERVER__LOG_DIR=str(root / "logs"),
        FACEREC_SERVER__LOG_LEVEL=log_level,
        FACEREC_MODELS__MODEL_DIR=str(root / "models"),
        FACEREC_INDEX__INDEX_DIR=str(root / "index"),
    )


@dataclass
class Server:
    client: httpx.Client
    rss: RssSampler
    data_dir: Path

    @property
    def port(self) -> int:
        return int(str(self.client.base_url).rstrip("/").rsplit(":", 1)[1])


@contextmanager
def running_server(
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    data_dir: Path | None = None,
    launcher: tuple[str, ...] = ("-m", "facerec.cli"),
) -> Iterator[Server]:
    """A ``facerec serve`` subprocess on a free localhost port with its own SQLite file, logs
    and model dir (overridable through ``env``), ready when this yields. ``data_dir``: start on
    an earlier server's files (a restart) instead of new ones. ``launcher``: the interpreter
    arguments that run facerec's command line (a bench may wrap it)."""
    port = free_port()
    tmp = data_dir or Path(tempfile.mkdtemp(prefix="facerec-bench-"))
    full_env = server_env(tmp)
    full_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, *launcher, "serve", "--port", str(port), "--skip-checks"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sampler = RssSampler(process.pid)
    sampler.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("facerec serve did not become ready")
                time.sleep(0.2)
            yield Server(client, sampler, tmp)
    finally:
        sampler.stop.set()
        process.terminate()
        process.wait(timeout=30)


class Connection:
    """A kept-alive HTTP/1.1 connection to a local server: the standard library's client, which
    does little work of its own per request (httpx adds ~1 ms: 1.3 against 0.4 ms for a
    ``GET /health``), so a client's time is mostly the server's. One per thread."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, response body)."""
        self._conn.request(method, path, body=body, headers=headers or {})
        response = self._conn.getresponse()
        return response.status, response.read()

    def post(self, path: str, body: bytes, content_type: str, key: str | None = None) -> int:
        headers = {"content-type": content_type}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.exchange("POST", path, body, headers)[0]

    def get(self, path: str) -> int:
        return self.exchange("GET", path)[0]


def multipart_body(data: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A multipart form of ``fields`` and ``data`` as its ``file`` part: (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    ]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    body = b"".join(parts) + head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
