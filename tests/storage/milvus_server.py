"""A real Milvus 2.3.5 standalone server for the tests: the ``milvus`` package on PyPI ships the
server binary (embedded etcd, local storage, rocksmq), started here as a child process in a
temporary directory, on spare ports, and stopped by its process group.

Every address Milvus advertises (its components talk to each other over gRPC), etcd's listeners
and the client's connection are 127.0.0.1. Milvus 2.3 has no setting for the address its gRPC
and metrics servers listen on: those ports are bound on every interface while the server runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1
# The template's port settings (milvus/data/config.yaml.template), each given a spare port.
PORTS = [
    "proxy_port",
    "proxy_internal_port",
    "root_coord_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
    "etcd_port",
]
COMPONENTS = [
    "proxy",
    "rootCoord",
    "queryCoord",
    "queryNode",
    "indexCoord",
    "indexNode",
    "dataCoord",
    "dataNode",
]
# A Strong search or query waits for the proxy's next time tick: every 50 ms instead of 200 ms
# (the tests make a few hundred). Loading a collection (~2 s) and a flush (~2 s) stay as they are.
SETTINGS = {"proxy.timeTickInterval": 50}


@dataclass
class MilvusServer:
    root: Path
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def healthy(self) -> bool:
        url = f"http://{LOOPBACK}:{self.metrics_port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            return b"OK" in response.read()
        return False

    def log_tail(self, chars: int = 3_000) -> str:
        path = self.root / "logs" / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers; then its files go."""
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait)
                break
        shutil.rmtree(self.root, ignore_errors=True)


def die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies, even by SIGKILL (Linux's prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spare_ports(count: int) -> list[int]:
    """Distinct free ports of 127.0.0.1 (all held open until every one is chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def start_milvus_server(root: Path, timeout_s: float = 120.0) -> MilvusServer:
    """Start a server with its data under ``root``; wait (at most ``timeout_s``) until healthy.
    Raises RuntimeError with the server's log tail when it exits or never becomes healthy."""
    import milvus  # type: ignore[import-untyped]

    ports = dict(zip([*PORTS, "etcd_peer", "metrics"], spare_ports(len(PORTS) + 2), strict=True))
    config = milvus.MilvusServerConfig(data_dir=str(root), **{k: ports[k] for k in PORTS})
    for component in COMPONENTS:  # advertised to the other components; default: eth0's address
        config.set(f"{component}.ip", LOOPBACK)
    for key, value in SETTINGS.items():
        config.set(key, value)
    config.resolve()  # writes configs/milvus.yaml and creates data/ and logs/
    # The embedded etcd ignores etcd.endpoints and listens on 2379/2380 unless configured.
    client = f"http://{LOOPBACK}:{ports['etcd_port']}"
    peer = f"http://{LOOPBACK}:{ports['etcd_peer']}"
    etcd = root / "configs" / "etcd.yaml"
    etcd.write_text(
        f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )
    milvus._initialize_data_files(str(root))  # unpacks bin/milvus and its libraries (~250 MB)
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(ports["metrics"]),
        "MILVUS_RUN_DIR": str(root / "run"),
        "MILVUSCONF": f"{root / 'configs'}/",
        "ETCD_CONFIG_PATH": str(etcd),
        "LD_LIBRARY_PATH": str(root / "bin"),
    }
    with (root / "logs" / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(root / "bin" / "milvus"), "run", "standalone"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one
            preexec_fn=die_with_parent,
        )
    server = MilvusServer(root, ports["proxy_port"], ports["metrics"], process)
    deadline = time.monotonic() + timeout_s
    while not server.healthy():
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            why = f"exited with code {process.returncode}" if exited else "was not healthy"
            raise RuntimeError(
                f"the Milvus 2.3.5 server {why} within {timeout_s:g} s; its log ends:\n{tail}"
            )
        time.sleep(0.2)
    return server
