"""Size sweep: raw model compute, the service in process, HTTP recognize and the insightface
library, at 512, 1920 and 4000 px, all in one run with the steps interleaved.

Photos: matplotlib's grace_hopper.jpg (one face) resized to each width, JPEG quality 90. Per size
and per model pair, each round runs every step once, in turn, so machine load hits all steps
alike; the tables give p50 over the rounds and the ratio HTTP / raw detect + embed.

- raw decode: ``decode_image`` at the scale detection needs (what the service decodes);
- raw detect: the detector on that image, with the resize to its input side (the pack detectors'
  640 px, or ``limits.detect_max_side``), as the service's detection does it;
- raw embed: the embedder's ``embed`` of the face on the decoded image (alignment + network);
- service: ``Analyzer.analyse`` in process (decode, detect, quality, subject, embed);
- HTTP: POST /api/face-recognition/recognize to a real ``facerec serve`` (base64 JSON, SQLite,
  a gallery of 2 persons), a new image each call (bytes after the JPEG's end: no cache hit), with
  the server's own processing time; HTTP upload: the same to /recognize-upload (multipart). The
  client is the standard library's ``http.client`` on a kept-alive connection, each body made
  before the clock starts, so the time is the server's and the socket's (httpx would add ~1 ms
  of its own per call);
- insightface: ``cv2.imdecode`` + ``FaceAnalysis.get`` (SCRFD-500M + w600k_mbf), built from the
  same ONNX files in ../shared/models, no download.

"MobileFaceNet" is InsightFace's w600k_mbf (MobileFaceNet trained on WebFace600K, the file
``arcface/w600k_mbf_fp32_from_int8.onnx``), the recogniser insightface itself runs. facerec sums
each face's vector with its mirror image's (two network runs); the row with
``FACEREC_MODELS__MIRROR_SUM=false`` does insightface's work (one run). Throughput:
``--clients`` concurrent callers for ``--runs`` photos each, facerec over HTTP and insightface on
as many threads.

    .venv/bin/python -m bench.bench_sizes [--runs 15] [--sizes 512 1920 4000] [--profile]
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import itertools
import json
import pstats
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from tests.images import astronaut_png, grace_hopper_jpeg

from bench.report import load_average, percentile, write_section
from bench.server import Connection, multipart_body, running_server
from facerec.config import Settings
from facerec.domain.analysis import Analyzer
from facerec.domain.detection import (
    DetectionService,
    DetectOptions,
    detect_downscaled,
    detector_side,
)
from facerec.domain.probes import AnalysisOptions, FaceChoice
from facerec.domain.timing import StageTimer
from facerec.inference.base import FaceDetector, FaceEmbedder
from facerec.inference.images import decode_image
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
from facerec.values import Detection

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "models"
API = "/api/face-recognition"
PACKS = {  # pack/install name -> file in ../shared/models
    ("scrfd_500m", "scrfd_500m_bnkps.onnx"): "scrfd/scrfd_500m_bnkps.onnx",
    ("w600k_mbf", "w600k_mbf.onnx"): "arcface/w600k_mbf_fp32_from_int8.onnx",
    ("mobilefacenet", "mobilefacenet_foamliu_opset18.onnx"): (
        "mobilefacenet/mobilefacenet_foamliu_opset18.onnx"
    ),
}


@dataclass(frozen=True)
class Pair:
    label: str
    detector: str
    embedder: str
    peer: bool = False  # compared with insightface (same models, same work)
    mirror: bool = True  # models.mirror_sum: the face and its mirror image (w600k_mbf's default)


PAIRS = (
    Pair("RetinaFace + dlib", "retinaface", "dlib_resnet"),
    Pair("RetinaFace + MobileFaceNet", "retinaface", "w600k_mbf"),
    Pair("SCRFD-500M + MobileFaceNet", "scrfd_500m", "w600k_mbf"),
    # What insightface does: one network run per face, no mirror image.
    Pair("SCRFD-500M + MobileFaceNet, mirror sum off", "scrfd_500m", "w600k_mbf", True, False),
)


@dataclass
class Samples:
    steps: dict[str, list[float]] = field(default_factory=dict)

    def add(self, step: str, ms: float) -> None:
        self.steps.setdefault(step, []).append(ms)

    def p50(self, step: str) -> float:
        return percentile(self.steps.get(step, []), 50)


def compose(width: int) -> bytes:
    """Grace Hopper resized to ``width`` px wide (one face), JPEG quality 90."""
    image = Image.open(io.BytesIO(grace_hopper_jpeg())).convert("RGB")
    height = round(image.height * width / image.width)
    buffer = io.BytesIO()
    image.resize((width, height), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def model_dir(root: Path) -> Path:
    for (pack, name), source in PACKS.items():
        (root / pack).mkdir(parents=True, exist_ok=True)
        (root / pack / name).symlink_to(SHARED / source)
    return root


def insightface_app(root: Path) -> Any:
    """FaceAnalysis over a folder holding our SCRFD-500M and w600k_mbf files (no download)."""
    from insightface.app import FaceAnalysis  # type: ignore[import-untyped]

    folder = root / "insightface-sc"
    folder.mkdir(parents=True)
    (folder / "det_500m.onnx").symlink_to(SHARED / "scrfd/scrfd_500m_bnkps.onnx")
    (folder / "w600k_mbf.onnx").symlink_to(SHARED / "arcface/w600k_mbf_fp32_from_int8.onnx")
    app = FaceAnalysis(
        name=str(folder),
        allowed_modules=["detection", "recognition"],
        providers=["CPUExecutionProvider"],
    )
    app.prepare(ctx_id=-1, det_size=(640, 640), det_thresh=0.5)
    return app


def insightface_call(app: Any, data: bytes) -> None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    faces = app.get(image)
    if not faces or faces[0].embedding is None:
        raise RuntimeError("insightface found no face")


@dataclass(frozen=True)
class Prepared:
    """A step whose input is made before the clock starts (``send(prepare())`` is timed from
    ``send``)."""

    prepare: Callable[[], Any]
    send: Callable[[Any], object]


def clock(fn: Callable[[], object] | Prepared) -> float:
    if isinstance(fn, Prepared):
        argument = fn.prepare()
        started = time.perf_counter()
        fn.send(argument)
        return (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


class Bench:
    def __init__(self, models: dict[bool, ModelManager], settings: Settings) -> None:
        self.models = models  # by models.mirror_sum
        self.settings = settings
        self.limits = settings.limits
        self.counter = itertools.count()

    def fresh(self, data: bytes) -> bytes:
        """The same JPEG with new bytes after its end: a different image to every cache."""
        return data + next(self.counter).to_bytes(8, "little")

    def raw_steps(self, pair: Pair, data: bytes) -> dict[str, Callable[[], object]]:
        """The models on their own: the decode at the scale the detector needs, the detector
        on that image (with the resize to its input: what its library's own call does), the
        embedder on the biggest face found."""
        models = self.models[pair.mirror]
        opts = DetectOptions()
        with models.use(pair.detector, FaceDetector) as detector:
            side = detector_side(detector, self.limits)
        pixels = decode_image(data, self.limits, reduce_to=side).pixels

        def detect() -> list[Detection]:
            with models.use(pair.detector, FaceDetector) as model:
                return detect_downscaled(model, pixels, side, opts)

        face = max(detect(), key=lambda f: f.bbox.area)

        def embed() -> object:
            with models.use(pair.embedder, FaceEmbedder) as model:
                return model.embed(pixels, [face])

        return {
            "decode": lambda: decode_image(data, self.limits, reduce_to=side),
            "detect": detect,
            "embed": embed,
        }


def run_sizes(args: argparse.Namespace) -> str:
    args.load_at_start = load_average()
    args.notes = set()
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bench-sizes-"))
    models_root = model_dir(tmp / "models")
    settings = Settings(_env_file=None, models={"model_dir": str(models_root)})
    names = sorted({p.detector for p in PAIRS} | {p.embedder for p in PAIRS})
    managers, analyzers = {}, {}
    for mirror in (True, False):
        config = settings.model_copy(
            update={"models": settings.models.model_copy(update={"mirror_sum": mirror})}
        )
        managers[mirror] = ModelManager(build_models(config), config.models)
        managers[mirror].preload(names)
        detection = DetectionService(managers[mirror], settings.limits)
        analyzers[mirror] = Analyzer(managers[mirror], detection, 0.5)
    bench = Bench(managers, settings)
    app = insightface_app(tmp)
    photos = {size: compose(size) for size in args.sizes}
    results: dict[tuple[int, str], Samples] = {}
    throughput: dict[tuple[int, str], float] = {}
    with ExitStack() as stack:
        servers = {}
        for detector, mirror in sorted({(p.detector, p.mirror) for p in PAIRS}):
            env = {
                "FACEREC_MODELS__MODEL_DIR": str(models_root),
                "FACEREC_MODELS__DEFAULT_DETECTOR": detector,
                "FACEREC_MODELS__MIRROR_SUM": str(mirror).lower(),
                "FACEREC_MODELS__PRELOAD": f'["{detector}","dlib_resnet","w600k_mbf"]',
                "FACEREC_AUTH__RATE_PER_SECOND": "0",
            }
            servers[(detector, mirror)] = stack.enter_context(running_server(env))
        for pair in PAIRS:
            for name, data in (("grace", grace_hopper_jpeg()), ("astronaut", astronaut_png())):
                response = servers[(pair.detector, pair.mirror)].client.post(
                    API + "/add-face",
                    json={
                        "person_name": name,
                        "face_image_base64": base64.b64encode(data).decode(),
                        "model_name": pair.embedder,
                    },
                )
                if response.status_code >= 400:  # the search then runs on an empty gallery
                    code = response.json().get("error", {}).get("code", response.status_code)
                    args.notes.add(
                        f"add-face with {pair.embedder} was refused ({code}): its recognize "
                        "calls search an empty collection."
                    )
                    break

        def service(pair: Pair, options: AnalysisOptions, data: bytes) -> None:
            analyzers[pair.mirror].analyse(bench.fresh(data), options, StageTimer())

        def body(pair: Pair, data: bytes) -> bytes:
            """A recognize request's JSON body, encoded before the clock starts: base64 and JSON
            are the client's own work (~13 ms for a 4000 px photo in Python)."""
            return json.dumps(
                {
                    "face_image_base64": base64.b64encode(bench.fresh(data)).decode(),
                    "model_name": pair.embedder,
                    "check_liveness": False,
                }
            ).encode()

        local = threading.local()  # one kept-alive connection per server and client thread

        def post(pair: Pair, path: str, body: bytes, content_type: str) -> bytes:
            port = servers[(pair.detector, pair.mirror)].port
            conns = local.__dict__.setdefault("conns", {})
            conn = conns.get(port) or conns.setdefault(port, Connection(port))
            status, answer = conn.exchange("POST", path, body, {"content-type": content_type})
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {answer[:200]!r}")
            return answer

        def send(pair: Pair, samples: Samples | None, content: bytes) -> None:
            answer = post(pair, API + "/recognize", content, "application/json")
            if samples is not None:
                samples.add("server", float(json.loads(answer)["processing_time"]) * 1000)

        def http(pair: Pair, data: bytes, samples: Samples | None = None) -> Prepared:
            return Prepared(partial(body, pair, data), partial(send, pair, samples))

        def form(pair: Pair, data: bytes) -> tuple[bytes, str]:
            """A recognize-upload's multipart body, made before the clock starts."""
            fields = {"model_name": pair.embedder, "check_liveness": "false"}
            return multipart_body(bench.fresh(data), fields)

        def upload(pair: Pair, prepared: tuple[bytes, str]) -> None:
            post(pair, API + "/recognize-upload", *prepared)

        for size, data in photos.items():
            steps: list[tuple[Pair, str, Callable[[], object] | Prepared]] = []
            for pair in PAIRS:
                raw = bench.raw_steps(pair, data)
                options = AnalysisOptions(
                    detector=pair.detector, embedder=pair.embedder, choice=FaceChoice.SUBJECT
                )
                steps += [(pair, step, fn) for step, fn in raw.items()]
                steps.append((pair, "service", partial(service, pair, options, data)))
                samples = results.setdefault((size, pair.label), Samples())
                steps.append((pair, "http", http(pair, data, samples)))
                steps.append(
                    (pair, "upload", Prepared(partial(form, pair, data), partial(upload, pair)))
                )
                if pair.peer:
                    steps.append((pair, "insightface", partial(insightface_call, app, data)))
            for _ in range(args.warmup):
                for _, _, fn in steps:
                    clock(fn)
            for pair in PAIRS:  # the warm-up calls' server times
                results[(size, pair.label)].steps.pop("server", None)
            for _ in range(args.runs):
                for pair, step, fn in steps:
                    results.setdefault((size, pair.label), Samples()).add(step, clock(fn))
            print(f"{size} px done", flush=True)
            peer = next(p for p in PAIRS if p.peer)
            throughput[(size, "facerec HTTP")] = rate(http(peer, data), args.clients, args.runs)
            throughput[(size, "insightface")] = rate(
                partial(insightface_call, app, data), args.clients, args.runs
            )
    return report(args, results, throughput)


def rate(fn: Callable[[], object] | Prepared, clients: int, per_client: int) -> float:
    """Photos per second with ``clients`` callers doing ``per_client`` calls each (a prepared
    step's inputs are all made before the clock starts)."""
    calls: list[Callable[[], object]] = [
        partial(fn.send, fn.prepare()) if isinstance(fn, Prepared) else fn
        for _ in range(clients * per_client)
    ]
    started = time.perf_counter()

    def caller(first: int) -> None:
        for call in calls[first : first + per_client]:
            call()

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(caller, n * per_client) for n in range(clients)]:
            future.result()
    return clients * per_client / (time.perf_counter() - started)


def report(
    args: argparse.Namespace,
    results: dict[tuple[int, str], Samples],
    throughput: dict[tuple[int, str], float],
) -> str:
    lines = [
        f"grace_hopper.jpg resized to each width (one face, JPEG q90); {args.runs} interleaved "
        f"rounds after {args.warmup} warm-up rounds, milliseconds p50. Raw detect + embed: the "
        "models alone (the p50 of the per-round sums); raw decode + detect + embed adds the "
        "decode at the scale detection needs (a JPEG's entropy decoding is paid whatever the "
        "scale: about 20 ms at 4000 px). HTTP: the client's time for a recognize (base64 JSON "
        "body, encoded before the clock starts: the client's base64 and JSON are its own "
        "work), and in brackets the server's own processing time; HTTP upload: the same photo "
        "to /recognize-upload (multipart, no base64). Client: `http.client`, kept-alive. "
        "HTTP / models: target ≤ 1.15. "
        "Mirror sum: w600k_mbf embeds each face and its mirror image (two network runs, the "
        "default, `FACEREC_MODELS__MIRROR_SUM`); insightface runs one, so the like-for-like "
        f"row is the one with it off. Load average when the run started: {args.load_at_start}.",
        "",
        "| size | models | raw decode | raw detect | raw embed | raw detect+embed "
        "| raw decode+detect+embed | service | HTTP (server) | HTTP upload | insightface "
        "| HTTP / models | HTTP / raw with decode |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (size, label), samples in results.items():
        steps = samples.steps
        models = percentile(
            [d + e for d, e in zip(steps["detect"], steps["embed"], strict=True)], 50
        )
        whole = percentile(
            [
                c + d + e
                for c, d, e in zip(steps["decode"], steps["detect"], steps["embed"], strict=True)
            ],
            50,
        )
        peer = f"{samples.p50('insightface'):.1f}" if "insightface" in steps else "-"
        http = samples.p50("http")
        lines.append(
            f"| {size} px | {label} | {samples.p50('decode'):.1f} | {samples.p50('detect'):.1f} "
            f"| {samples.p50('embed'):.1f} | {models:.1f} | {whole:.1f} "
            f"| {samples.p50('service'):.1f} | {http:.1f} ({samples.p50('server'):.1f}) "
            f"| {samples.p50('upload'):.1f} | {peer} "
            f"| {http / models:.2f} | {http / whole:.2f} |"
        )
    lines += [
        "",
        f"Photos per second, {args.clients} concurrent callers x {args.runs} photos "
        "(SCRFD-500M + MobileFaceNet, one network run per face as insightface does; facerec "
        "over HTTP with every body encoded before the clock starts, insightface in process on "
        "threads):",
        "",
        "| size | facerec HTTP | insightface |",
        "|---|---:|---:|",
    ]
    for size in args.sizes:
        lines.append(
            f"| {size} px | {throughput[(size, 'facerec HTTP')]:.1f} "
            f"| {throughput[(size, 'insightface')]:.1f} |"
        )
    lines += ["", *sorted(args.notes)]
    return "\n".join(lines)


def profile(args: argparse.Namespace) -> None:
    """cProfile of the service path (decode → embed) at each size: where time goes outside the
    models."""
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bench-sizes-"))
    settings = Settings(_env_file=None, models={"model_dir": str(model_dir(tmp / "models"))})
    models = ModelManager(build_models(settings), settings.models)
    analyzer = Analyzer(models, DetectionService(models, settings.limits), 0.5)
    bench = Bench({True: models}, settings)
    for pair in PAIRS[:2]:
        options = AnalysisOptions(
            detector=pair.detector, embedder=pair.embedder, choice=FaceChoice.SUBJECT
        )
        for size in args.sizes:
            data = compose(size)
            for _ in range(3):
                analyzer.analyse(bench.fresh(data), options, StageTimer())
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.runs):
                analyzer.analyse(bench.fresh(data), options, StageTimer())
            profiler.disable()
            print(f"\n=== {pair.label}, {size} px, {args.runs} calls ===")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1920, 4000])
    parser.add_argument("--profile", action="store_true", help="cProfile the service path only")
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS")
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return
    body = run_sizes(args)
    print(body)
    if not args.no_write:
        write_section("sizes", "Image sizes: raw models vs service vs HTTP vs insightface", body)


if __name__ == "__main__":
    main()
