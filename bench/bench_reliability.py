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
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
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
    UnavailableError,
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
        load = Load(
            self.service.base,
            threads=self.clients,
            max_requests=1_000_000,  # bounded by time
            cycle=cycle or CYCLE,
            shuffle=True,
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
    return Steady(
        load, seconds, audit_database(run.postgres.url, load), rss_before, kib(pid, "VmHWM")
    )


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
    return Fault(
        "Redis SIGKILLed, restarted", load, fault_at, restart_at, recovered_at, audit, note
    )


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
    load = run.load(["enroll"], allowed_503=frozenset({"not_ready"}))  # while it starts
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
                    calls.append((route, partial(client.post, route, json=body(text))))
                for route, (fields, form) in UPLOAD_ROUTES.items():
                    files = {f: ("x.bin", data) for f in fields}
                    calls.append((route, partial(client.post, route, files=files, data=form)))
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
                    if (
                        response.status_code == 503
                        and code == "liveness_unavailable"
                        and not liveness
                    ):
                        result.documented_503 += 1
                    else:
                        result.server_errors.append(
                            f"{family}/{name} {route} {response.status_code}"
                        )
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
        body = {
            "person_name": "Rss",
            "person_id": f"rss-{next(counter)}",
            "face_image_base64": image(),
        }
        return client.post(API + "/add-face", json=body)

    classes: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
        ("enroll (add-face, new person)", enroll),
        ("recognize", lambda c: c.post(API + "/recognize", json={"face_image_base64": image()})),
        (
            "compare",
            lambda c: c.post(
                API + "/compare",
                json={"face1_image_base64": image(), "face2_image_base64": image()},
            ),
        ),
        (
            "detect (two-face photo)",
            lambda c: c.post(DETECT, json={"image_base64": image(run.group)}),
        ),
        ("list persons", lambda c: c.get(API + "/persons?limit=50")),
    ]
    rows = []
    with httpx.Client(base_url=run.service.base, timeout=120) as client:
        for name, send in classes:
            send(client)  # warm-up
            worst = 0
            for _ in range(runs):
                growth, response = peak_growth(pid, partial(send, client))
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                worst = max(worst, growth)
            rows.append((name, worst))
        worst = 0
        for index in range(runs + 1):  # the first one a warm-up
            path = f"{API}/persons/{enroll(client).json()['person_id']}"
            growth, response = peak_growth(pid, partial(client.delete, path))
            if response.status_code != 200:
                raise RuntimeError(f"erase: {response.status_code} {response.text[:300]}")
            worst = max(worst, growth) if index else 0
        rows.append(("erase (delete person)", worst))
    return rows


# --- report -----------------------------------------------------------------------------------


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.0f}"


def by_route(load: Load) -> dict[str, Counter[str]]:
    """Route -> (status[ code] or connection error) -> count."""
    table: dict[str, Counter[str]] = {}
    for key, count in load.statuses.items():
        route, _, outcome = key.partition(" ")
        table.setdefault(route, Counter())[outcome] += count
    return table


def spell(counts: Counter[Any]) -> str:
    return ", ".join(f"{key} ×{n}" for key, n in sorted(counts.items(), key=lambda kv: str(kv[0])))


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def steady_table(result: Steady, clients: int, minutes: float) -> list[str]:
    load, audit = result.load, result.audit
    lines = [
        f"{clients} client threads for {minutes:g} min ({result.seconds:.0f} s measured), "
        f"{load.total} requests ({load.total / result.seconds:.1f}/s), 50 ms think time between "
        "requests; every image a distinct byte string (no answer from the cache). Each client "
        "goes round a shuffled cycle of 13 requests: 3 enroll (new person), 2 add-face to one of "
        "its persons, 1 erase of its oldest person, 3 recognize, 1 compare, 2 detect (half of "
        "them a two-face photo), 1 list.",
        "",
        "| route | requests | statuses | p50 (ms) | p95 (ms) |",
        "|---|---|---|---|---|",
    ]
    routes = by_route(load)
    for route in ROUTES:
        counts = routes.get(route, Counter())
        times = load.latencies.get(route, [])
        lines.append(
            f"| {ROUTE_PATHS[route]} | {sum(counts.values())} | {spell(counts)} | "
            f"{percentile(times, 50):.0f} | {percentile(times, 95):.0f} |"
        )
    lines += [
        "",
        f"5xx: {server_errors(load)}. Database afterwards: {audit.persons} acknowledged persons "
        f"and {audit.faces} acknowledged faces present except {audit.lost} lost; "
        f"{audit.erased} acknowledged erasures, {audit.erased_present} of them still present; "
        f"{audit.without_faces} persons without faces. Service RSS {mib(result.rss_before)} MiB "
        f"before the load, peak {mib(result.rss_peak)} MiB during it.",
    ]
    return lines


def faults_table(faults: list[Fault]) -> list[str]:
    lines = [
        "Each fault under the same client mix (the service kill: enrollments only), 3 s of load "
        "before it and 2-3 s after the recovery. *Down*: from the fault to the restart (the "
        "service is restarted at once: its outage is its start-up, *recovered*); *errors for*: "
        "first to last failed request as the clients saw it; *recovered*: from the restart "
        "until usable again (see below); *first write*: the first enrollment answered 200 after "
        "the restart.",
        "",
        "| fault | requests | 200 | 503 | connection errors | other | down (s) | errors for (s) "
        "| recovered (s) | first write (s) | acknowledged persons / faces / erasures "
        "| lost | persons without faces | survived |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fault in faults:
        outcomes, audit = fault.outcomes(), fault.audit
        other = sum(n for k, n in outcomes.items() if k not in ("ok", "503", "conn"))
        recovered = None if fault.recovered_at is None else fault.recovered_at - fault.restart_at
        lines.append(
            f"| {fault.name} | {fault.load.total} | {outcomes['ok']} | {outcomes['503']} "
            f"| {outcomes['conn']} | {other} | {fault.restart_at - fault.fault_at:.1f} "
            f"| {fault.error_window():.1f} | {seconds(recovered)} "
            f"| {seconds(fault.first_write_after_restart())} "
            f"| {audit.persons} / {audit.faces} / {audit.erased} | {audit.lost} "
            f"| {audit.without_faces} | {'yes' if fault.survived else '**no**'} |"
        )
    lines.append("")
    for fault in faults:
        statuses = spell(Counter({k: n for k, n in fault.load.statuses.items()}))
        lines.append(f"- {fault.name}: {statuses}; {fault.note}.")
    return lines


def bad_inputs_table(result: BadInputs, liveness: bool) -> list[str]:
    routes = len(JSON_ROUTES) + len(UPLOAD_ROUTES)
    pack = "installed" if liveness else "not installed (anti-spoofing routes answer 503)"
    lines = [
        f"Every input through all {routes} image routes ({len(JSON_ROUTES)} JSON base64, "
        f"{len(UPLOAD_ROUTES)} multipart), one at a time, default limits (200 MB per request, "
        f"40 MP per image); liveness pack {pack}. Peak: the server's RSS growth during one "
        "request, worst of the family.",
        "",
        "| family | inputs | requests | statuses | 5xx | worst peak RSS growth (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for family, corpus in result.families.items():
        statuses = result.statuses[family]
        errors = sum(1 for line in result.server_errors if line.startswith(family + "/"))
        lines.append(
            f"| {family} | {len(corpus)} | {sum(statuses.values())} | {spell(statuses)} "
            f"| {errors} | {result.peaks[family] / MIB:.1f} |"
        )
    lines += ["", f"A real photo's detect after the corpus: {result.after}."]
    return lines


def rss_table(rows: list[tuple[str, int]], bad: BadInputs, rss_fresh: int) -> list[str]:
    lines = [
        f"The service restarted first (RSS {mib(rss_fresh)} MiB after start-up), then one request "
        "at a time, the kernel's peak mark of the server reset before each "
        "(`/proc/PID/clear_refs`): the peak growth over the RSS it started from, worst of 3 "
        "after a warm-up; bad input (sent after these): worst of its family.",
        "",
        "| request class | peak RSS growth (MiB) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {growth / MIB:.1f} |" for name, growth in rows]
    lines += [f"| bad input: {family} | {peak / MIB:.1f} |" for family, peak in bad.peaks.items()]
    return lines


def total_audit(run: Run) -> Audit:
    audits = [audit_database(run.postgres.url, load) for load in run.loads]
    return Audit(
        persons=sum(a.persons for a in audits),
        faces=sum(a.faces for a in audits),
        erased=sum(a.erased for a in audits),
        lost_persons=sum(a.lost_persons for a in audits),
        lost_faces=sum(a.lost_faces for a in audits),
        erased_present=sum(a.erased_present for a in audits),
        without_faces=max((a.without_faces for a in audits), default=0),
    )


@dataclass(frozen=True)
class Totals:
    requests: int
    server_errors: int
    documented_503: Counter[str]  # code -> count
    connection_errors: int
    audit: Audit
    unrecovered: list[str]

    @property
    def passed(self) -> bool:
        return self.server_errors == 0 and self.audit.clean and not self.unrecovered


def totals(run: Run, faults: list[Fault], bad: BadInputs, rss_requests: int) -> Totals:
    outcomes: Counter[str] = Counter()
    documented: Counter[str] = Counter()
    for load in run.loads:
        outcomes.update(e.outcome for e in load.events)
        for key, count in load.statuses.items():
            _, status, code = [*key.split(), ""][:3]
            if status == "503" and code in load.allowed_503:
                documented[code] += count
    if bad.documented_503:
        documented["liveness_unavailable"] += bad.documented_503
    return Totals(
        requests=sum(load.total for load in run.loads)
        + sum(sum(c.values()) for c in bad.statuses.values())
        + rss_requests,
        server_errors=sum(server_errors(load) for load in run.loads) + len(bad.server_errors),
        documented_503=documented,
        connection_errors=outcomes["conn"],
        audit=total_audit(run),
        unrecovered=[f.name for f in faults if not f.survived],
    )


def totals_table(result: Totals) -> list[str]:
    audit = result.audit
    return [
        "| total | value |",
        "|---|---|",
        f"| requests (load, faults, bad input, RSS classes) | {result.requests} |",
        f"| 5xx other than the documented 503s | {result.server_errors} |",
        "| documented 503s (`storage_unavailable`: PostgreSQL down; `not_ready`: the service "
        f"starting) | {sum(result.documented_503.values())}: {spell(result.documented_503)} |",
        f"| connection errors (service killed) | {result.connection_errors} |",
        f"| acknowledged persons / faces / erasures checked at the end "
        f"| {audit.persons} / {audit.faces} / {audit.erased} |",
        f"| lost records (must be 0) | {audit.lost} |",
        f"| erased records still present (must be 0) | {audit.erased_present} |",
        f"| persons without faces (must be 0) | {audit.without_faces} |",
        f"| faults not survived | {', '.join(result.unrecovered) or 'none'} |",
        f"| result | {'PASS' if result.passed else '**FAIL**'} |",
    ]


# --- main -------------------------------------------------------------------------------------


def install_liveness(model_dir: Path) -> bool:
    """The MiniFASNet pack converted from ../shared/models, when there (as the tests do)."""
    if not (SHARED_MODELS / "minifasnet").is_dir():
        return False
    from facerec.inference.catalogue import PACK_DIRNAME
    from facerec.inference.liveness.minifasnet_pack import convert_pack

    try:
        convert_pack(SHARED_MODELS / "minifasnet", model_dir / PACK_DIRNAME)
    except Exception as exc:  # torch missing or the weights unreadable: 503 documented below
        print(f"liveness pack not installed: {exc}", file=sys.stderr)
        return False
    return True


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: every server is stopped by the ExitStack


@contextlib.contextmanager
def servers(work: Path) -> Iterator[tuple[PrivatePostgres, PrivateRedis, Service, bool]]:
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        postgres = start_private_postgres()
        stack.callback(postgres.close)
        redis = start_private_redis()
        stack.callback(redis.stop)
        liveness = install_liveness(work / "models")
        service = Service(service_env(postgres.url, redis.url, work), work)
        stack.callback(service.stop)
        service.start()
        yield postgres, redis, service, liveness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0, help="steady load duration")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--down-seconds", type=float, default=4.0, help="each outage")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="facerec-reliability-"))
    started = time.monotonic()
    with servers(work) as (postgres, redis, service, liveness):
        log(f"service on {service.base}, PostgreSQL :{postgres.port}, Redis :{redis.port}")
        photos = usable(service.base, photo_variants(6, args.seed))
        if not photos:
            raise RuntimeError("no composited photo was enrolled")
        group = jpeg(Image.fromarray(composite_rgb()), 90)
        run = Run(postgres, redis, service, args.clients, photos, group, args.seed)
        log(f"{len(photos)} photos; steady load: {args.clients} clients x {args.minutes:g} min")
        steady_result = steady(run, args.minutes)
        log(f"steady: {steady_result.load.total} requests; faults")
        faults = [fault_postgres(run, args.down_seconds), fault_redis(run, args.down_seconds)]
        faults.append(fault_service(run))
        log("service restarted; peak RSS per request class")
        service.stop()  # a fresh process: the load's heap would hide each request's own peak
        service.start()
        rss_fresh = kib(service_pid(run), "VmRSS") or 0
        rows = peak_per_class(run)
        log("bad inputs")
        bad = send_bad_inputs(run, liveness)
        result = totals(run, faults, bad, rss_requests=len(rows) * 4 + 4)
    elapsed = time.monotonic() - started
    body = "\n".join(
        [
            f"A real service process (uvicorn, `facerec.app:serve_app`) on a private PostgreSQL "
            f"and a private Redis, all on 127.0.0.1, started and stopped by this script; "
            f"{elapsed / 60:.1f} min in all. Photos: {len(photos)} composited variants of "
            "matplotlib's Grace Hopper and scikit-image's astronaut (scaled, mirrored, "
            "lightened or darkened, placed on a grey canvas).",
            "",
            "### Steady load",
            "",
            *steady_table(steady_result, args.clients, args.minutes),
            "",
            "### Faults under load",
            "",
            *faults_table(faults),
            "",
            "### Bad input (tests/api/bombs.py corpus)",
            "",
            *bad_inputs_table(bad, liveness),
            "",
            "### Peak RSS per request class",
            "",
            *rss_table(rows, bad, rss_fresh),
            "",
            "### Totals",
            "",
            *totals_table(result),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("reliability", "Reliability: load, faults, bad input", body)
    for load in run.loads:
        for line in load.unexpected[:5]:
            log(f"unexpected: {line}")
    for line in bad.server_errors[:10]:
        log(f"bad input 5xx: {line}")
    return 0 if result.passed else 1


def entry() -> int:
    try:
        return main()
    except UnavailableError as exc:
        log(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(entry())
