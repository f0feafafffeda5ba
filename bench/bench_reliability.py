"""Reliability ("Safe to expose" §5): steady load, faults under load and malformed input against a
real ``facerec serve`` process (uvicorn) on a private PostgreSQL and a private Redis.

1. Steady load: ``--clients`` threads for ``--minutes`` enrolling (new persons and more faces),
   recognising, comparing, detecting, listing and erasing; statuses and p50/p95 per route.
2. Faults under load: PostgreSQL stopped and restarted, Redis killed and restarted, the service
   SIGKILLed during an enrollment burst and restarted; every acknowledged write is then looked
   up in the database (none may be lost, no person may be left without faces).
3. Bad input: the malformed-image corpus (tests/api/bombs.py) through every image route.
4. Peak RSS growth of one request per request class (kernel peak mark reset before each).

Everything listens on 127.0.0.1; every server is started and stopped here by its PID, also on
errors. Exits 1 if a 5xx other than the documented 503s was seen, a record was lost, or a fault
was not recovered from.

    python bench/bench_reliability.py [--minutes 2] [--clients 4] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.api.bombs import bombs, exif_oddities, polyglots, truncations
from tests.images import astronaut_rgb, composite_rgb, grace_hopper_rgb

from bench.bench_limits import peak_growth
from bench.faults import (
    API,
    DETECT,
    Audit,
    Event,
    Load,
    PrivatePostgres,
    PrivateRedis,
    Service,
    audit_database,
    poll,
    ready_status,
    service_env,
    start_private_postgres,
    start_private_redis,
)
from bench.report import percentile, write_section

MIB = 1024 * 1024
SHARED_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models"
# Each client goes round this (shuffled per client): 13 requests, 6 of them writes.
CYCLE = ["enroll"] * 3 + ["enroll-more"] * 2 + ["erase"] + ["recognize"] * 3
CYCLE += ["compare", "detect", "detect", "list"]
ROUTES = ["enroll", "enroll-more", "recognize", "compare", "detect", "list", "erase"]
ROUTE_PATHS = {
    "enroll": "POST add-face (new person)",
    "enroll-more": "POST add-face (existing person)",
    "recognize": "POST recognize",
    "compare": "POST compare",
    "detect": "POST face-detection/detect",
    "list": "GET persons",
    "erase": "DELETE persons/{id}",
}
JSON_ROUTES: dict[str, Callable[[str], dict[str, Any]]] = {
    "/api/face-detection/detect": lambda img: {"image_base64": img},
    "/api/face-recognition/add-face": lambda img: {"person_name": "x", "face_image_base64": img},
    "/api/face-recognition/register-multiple": lambda img: {
        "full_name": "x",
        "employee_id": "E-bomb",
        "images": [img],
    },
    "/api/face-recognition/recognize": lambda img: {"face_image_base64": img},
    "/api/face-recognition/compare": lambda img: {
        "face1_image_base64": img,
        "face2_image_base64": img,
    },
    "/api/face-antispoofing/detect": lambda img: {"image_base64": img},
}
UPLOAD_ROUTES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "/api/face-detection/detect-upload": (("file",), {}),
    "/api/face-recognition/add-face-upload": (("file",), {"person_name": "x"}),
    "/api/face-recognition/recognize-upload": (("file",), {}),
    "/api/face-recognition/compare-upload": (("file1", "file2"), {}),
    "/api/face-antispoofing/detect-upload": (("file",), {}),
}


# --- photos -----------------------------------------------------------------------------------


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo_variants(per_subject: int, seed: int) -> list[bytes]:
    """Grace Hopper (matplotlib) and the astronaut (scikit-image), each scaled, maybe mirrored,
    lightened or darkened and pasted at a random place on a grey canvas; JPEG q75-95."""
    rng = random.Random(seed)
    photos = []
    for subject in (grace_hopper_rgb(), astronaut_rgb()):
        source = Image.fromarray(subject)
        for _ in range(per_subject):
            scale = rng.uniform(0.6, 1.0)
            face = source.resize((round(source.width * scale), round(source.height * scale)))
            if rng.random() < 0.5:
                face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            face = ImageEnhance.Brightness(face).enhance(rng.uniform(0.8, 1.2))
            grey = rng.randint(90, 170)
            size = (round(face.width * rng.uniform(1.2, 1.6)), round(face.height * 1.2))
            canvas = Image.new("RGB", size, (grey, grey, grey))
            at = (rng.randint(0, size[0] - face.width), rng.randint(0, size[1] - face.height))
            canvas.paste(face, at)
            photos.append(jpeg(canvas, rng.randint(75, 95)))
    return photos


def usable(base: str, photos: list[bytes]) -> list[bytes]:
    """The photos the service enrolls (one face, good enough), each tried once and erased."""
    kept = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for index, photo in enumerate(photos):
            body = {
                "person_name": "Warm-up",
                "person_id": f"warmup-{index}",
                "face_image_base64": base64.b64encode(photo).decode(),
            }
            if client.post(API + "/add-face", json=body).status_code == 200:
                kept.append(photo)
                client.delete(f"{API}/persons/warmup-{index}")
    return kept


# --- phases -----------------------------------------------------------------------------------


@dataclass
class Run:
    """The servers and the photos every phase uses, and every load for the final audit."""

    postgres: PrivatePostgres
    redis: PrivateRedis
    service: Service
    clients: int
    photos: list[bytes]
    group: bytes
    seed: int
    loads: list[Load] = field(default_factory=list)

    def load(self, cycle: list[str] | None = None, *, allowed_503: frozenset[str]) -> Load:
        rng = random.Random(self.seed + len(self.loads))
        ops = list(cycle or CYCLE)
        rng.shuffle(ops)
        load = Load(
            self.service.base,
            threads=self.clients,
            max_requests=1_000_000,  # bounded by time
            cycle=ops,
            images=self.photos,
            group_photo=self.group,
            vary=True,
            think_s=0.05,
            seed=self.seed + len(self.loads),
            allowed_503=allowed_503,
        )
        self.loads.append(load)
        return load


def server_errors(load: Load) -> int:
    """5xx answers other than the 503s ``load`` allows."""
    return sum(1 for line in load.unexpected if line.split()[1].startswith("5"))


@dataclass
class Steady:
    load: Load
    seconds: float
    audit: Audit
    rss_before: int
    rss_peak: int | None


def kib(pid: int, name: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return None


def service_pid(run: Run) -> int:
    assert run.service.process is not None
    return run.service.process.pid


def steady(run: Run, minutes: float) -> Steady:
    pid = service_pid(run)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak mark := current RSS
    rss_before = kib(pid, "VmRSS") or 0
    load = run.load(allowed_503=frozenset())
    started = time.monotonic()
    load.start()
    time.sleep(minutes * 60)
    load.stop()
    seconds = time.monotonic() - started
    return Steady(load, seconds, audit_database(run.postgres.url, load), rss_before, kib(pid, "VmHWM"))


@dataclass
class Fault:
    name: str
    load: Load
    fault_at: float
    restart_at: float
    recovered_at: float | None  # the dependency (or the service) usable again
    audit: Audit
    note: str

    def outcomes(self) -> Counter[str]:
        return Counter(e.outcome for e in self.load.events)

    def errors(self) -> list[Event]:
        return [e for e in self.load.events if e.outcome != "ok"]

    def error_window(self) -> float:
        errors = self.errors()
        return errors[-1].at - errors[0].at if errors else 0.0

    def first_write_after_restart(self) -> float | None:
        oks = [
            e.at
            for e in self.load.events
            if e.outcome == "ok" and e.route.startswith("enroll") and e.at >= self.restart_at
        ]
        return min(oks) - self.restart_at if oks else None

    @property
    def survived(self) -> bool:
        return self.recovered_at is not None and server_errors(self.load) == 0 and self.audit.clean


def redis_keys(port: int) -> int:
    from redis import Redis

    try:
        with Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
            return int(client.dbsize())
    except Exception:
        return 0


def fault_redis(run: Run, down_s: float) -> Fault:
    load = run.load(allowed_503=frozenset())
    load.start()
    time.sleep(3)
    fault_at = time.monotonic()
    run.redis.kill()
    time.sleep(down_s)
    restart_at = time.monotonic()
    run.redis.start()
    back = poll(lambda: redis_keys(run.redis.port) > 0, 20)  # the service writes to it again
    recovered_at = time.monotonic() if back else None
    time.sleep(2)
    load.stop()
    note = "recovered: the service caching in the restarted (empty) Redis again"
    audit = audit_database(run.postgres.url, load)
    return Fault("Redis SIGKILLed, restarted", load, fault_at, restart_at, recovered_at, audit, note)


def fault_postgres(run: Run, down_s: float) -> Fault:
    load = run.load(allowed_503=frozenset({"storage_unavailable"}))
    load.start()
    time.sleep(3)
    fault_at = time.monotonic()
    run.postgres.stop()
    unready = poll(lambda: ready_status(run.service) == 503, down_s)
    time.sleep(max(0.0, down_s - (time.monotonic() - fault_at)))
    restart_at = time.monotonic()
    run.postgres.start()
    back = poll(lambda: ready_status(run.service) == 200, 30)
    recovered_at = time.monotonic() if back else None
    time.sleep(3)
    load.stop()
    note = "recovered: /ready 200 again, the service not restarted"
    if not unready:
        note += "; /ready never said 503 during the outage"
    audit = audit_database(run.postgres.url, load)
    return Fault(
        "PostgreSQL stopped, restarted", load, fault_at, restart_at, recovered_at, audit, note
    )


def fault_service(run: Run) -> Fault:
    load = run.load(["enroll"], allowed_503=frozenset())
    load.start()
    time.sleep(3)
    fault_at = time.monotonic()
    run.service.kill()
    restart_at = time.monotonic()
    recovered_at: float | None = None
    with contextlib.suppress(RuntimeError):
        run.service.start()
        recovered_at = time.monotonic()
    time.sleep(2)
    load.stop()
    note = "recovered: the restarted service /ready 200 (start-up and model preload included)"
    audit = audit_database(run.postgres.url, load)
    return Fault(
        "service SIGKILLed in an enrollment burst, restarted",
        load,
        fault_at,
        restart_at,
        recovered_at,
        audit,
        note,
    )


@dataclass
class BadInputs:
    families: dict[str, dict[str, bytes]]
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    documented_503: int = 0
    after: int = 0  # the status of a real photo's detect after the corpus


def send_bad_inputs(run: Run, liveness: bool) -> BadInputs:
    result = BadInputs(
        {
            "decompression bombs": bombs(),
            "truncations": truncations(),
            "EXIF oddities": exif_oddities(),
            "polyglots": polyglots(),
        }
    )
    pid = service_pid(run)
    with httpx.Client(base_url=run.service.base, timeout=120) as client:
        for family, corpus in result.families.items():
            statuses: Counter[int] = Counter()
            worst = 0
            for name, data in corpus.items():
                text = base64.b64encode(data).decode()
                calls: list[tuple[str, Callable[[], httpx.Response]]] = []
                for route, body in JSON_ROUTES.items():
                    calls.append((route, lambda r=route, b=body: client.post(r, json=b(text))))
                for route, (fields, form) in UPLOAD_ROUTES.items():
                    files = {f: ("x.bin", data) for f in fields}
                    calls.append(
                        (route, lambda r=route, f=files, d=form: client.post(r, files=f, data=d))
                    )
                for route, call in calls:
                    try:
                        growth, response = peak_growth(pid, call)
                    except OSError:  # no access to the peak mark: count the answers only
                        growth, response = 0, call()
                    worst = max(worst, growth)
                    statuses[response.status_code] += 1
                    if response.status_code < 500:
                        continue
                    code = response.json().get("error", {}).get("code", "") if response.text else ""
                    if response.status_code == 503 and code == "liveness_unavailable" and not liveness:
                        result.documented_503 += 1
                    else:
                        result.server_errors.append(f"{family}/{name} {route} {response.status_code}")
            result.statuses[family] = statuses
            result.peaks[family] = worst
        photo = base64.b64encode(run.photos[0]).decode()
        result.after = client.post(DETECT, json={"image_base64": photo}).status_code
    return result


def peak_per_class(run: Run, runs: int = 3) -> list[tuple[str, int]]:
    """Worst peak RSS growth of one request of each class, over ``runs`` after a warm-up."""
    pid = service_pid(run)
    rng = random.Random(run.seed)

    def image(data: bytes | None = None) -> str:
        data = data if data is not None else rng.choice(run.photos)
        return base64.b64encode(data + b"nonce" + rng.randbytes(8)).decode()

    counter = iter(range(1_000_000))

    def enroll(client: httpx.Client) -> httpx.Response:
        body = {"person_name": "Rss", "person_id": f"rss-{next(counter)}", "face_image_base64": image()}
        return client.post(API + "/add-face", json=body)

    classes: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
        ("enroll (add-face, new person)", enroll),
        ("recognize", lambda c: c.post(API + "/recognize", json={"face_image_base64": image()})),
        (
            "compare",
            lambda c: c.post(
                API + "/compare", json={"face1_image_base64": image(), "face2_image_base64": image()}
            ),
        ),
        ("detect (two-face photo)", lambda c: c.post(DETECT, json={"image_base64": image(run.group)})),
        ("list persons", lambda c: c.get(API + "/persons?limit=50")),
    ]
    rows = []
    with httpx.Client(base_url=run.service.base, timeout=120) as client:
        for name, send in classes:
            send(client)  # warm-up
            worst = 0
            for _ in range(runs):
                growth, response = peak_growth(pid, lambda s=send: s(client))
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                worst = max(worst, growth)
            rows.append((name, worst))
        worst = 0
        for _ in range(runs + 1):
            person = enroll(client).json()["person_id"]
            growth, response = peak_growth(pid, lambda p=person: client.delete(f"{API}/persons/{p}"))
            if response.status_code != 200:
                raise RuntimeError(f"erase: {response.status_code} {response.text[:300]}")
            worst = max(worst, growth)
        rows.append(("erase (delete person)", worst))
    return rows
