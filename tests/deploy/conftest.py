"""Two ``facerec serve`` processes on one private PostgreSQL and Redis (bench/faults.py), API keys
on as beyond loopback, behind tests/deploy/proxy.py: the compose topology on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bench.faults import (
    PrivatePostgres,
    PrivateRedis,
    Service,
    service_env,
)

from tests.deploy.proxy import RoundRobinProxy


class ServeProcess(Service):
    """``facerec serve`` itself (the Dockerfile's command), not uvicorn started directly."""

    def start(self, timeout: float = 120.0) -> None:
        command = [sys.executable, "-m", "facerec.cli", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        log = (self.cwd / "service.log").open("ab")
        self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"facerec serve exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"facerec serve did not become ready: {self.log_tail()}")


@dataclass
class Topology:
    replicas: list[ServeProcess]
    proxy: RoundRobinProxy
    api_key: str
    metrics_token: str
    database_url: str


def create_key(env: dict[str, str], cwd: Path) -> str:
    """The README's key setup: ``facerec keys create --json`` on the shared database."""
    command = [sys.executable, "-m", "facerec.cli", "keys", "create", "--json"]
    command += ["--scopes", "detect,recognize,enroll,manage", "--name", "deploy-test"]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return str(json.loads(done.stdout)["key"])


@pytest.fixture(scope="module")
def topology(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Topology]:
    pepper, metrics_token = secrets.token_hex(16), secrets.token_hex(16)
    replicas: list[ServeProcess] = []
    proxy: RoundRobinProxy | None = None
    try:
        for index in (1, 2):
            work = tmp_path_factory.mktemp(f"replica-{index}")
            env = service_env(private_postgres.url, private_redis.url, work)
            # As beyond loopback (the container listens on 0.0.0.0): keys required, one pepper.
            env["FACEREC_AUTH__REQUIRED"] = "true"
            env["FACEREC_AUTH__PEPPER"] = pepper
            env["FACEREC_AUTH__METRICS_TOKEN"] = metrics_token
            replicas.append(ServeProcess(env, work))
        api_key = create_key(replicas[0].env, replicas[0].cwd)
        for replica in replicas:
            replica.start()
        proxy = RoundRobinProxy([replica.base for replica in replicas])
        proxy.start()
        yield Topology(replicas, proxy, api_key, metrics_token, private_postgres.url)
    finally:
        if proxy is not None:
            proxy.stop()
        for replica in replicas:
            replica.stop()
