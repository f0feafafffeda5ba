"""The settings groups of the inference pipeline: which models are loaded and how they run
(``models``), the liveness check (``liveness``) and the bounds on the images a request may bring
(``limits``).

Apart from :mod:`facerec.config` so that module stays one read; these groups are fields of
:class:`~facerec.config.Settings` and are imported from there, like every settings group.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator


def default_model_dir() -> Path:
    """``<user data dir>/facerec/models`` (``~/.local/share/facerec/models`` on Linux)."""
    import platformdirs

    return platformdirs.user_data_path("facerec") / "models"


class ModelSettings(BaseModel):
    # Where imported/pulled model packs live: a per-user data directory by default, so that
    # ``facerec models ...`` and ``facerec serve`` find the same packs wherever they are started.
    model_dir: Path = Field(default_factory=lambda: default_model_dir())
    # Total bytes of loaded models before least-recently-used eviction (RAM, or VRAM with CUDA).
    memory_budget_mb: int = Field(2048, ge=1)
    # Models unused this long are unloaded; 0 disables idle unload.
    idle_unload_seconds: float = Field(900.0, ge=0)
    # Models loaded at start-up, before /ready. "auto": the detector and embedder a request
    # naming no model gets (retinaface and dlib_resnet until a better pack is installed).
    preload: list[str] = Field(default_factory=lambda: ["auto"])
    # Execution providers wanted, in order; the ones onnxruntime really has are used.
    providers: list[str] = Field(
        default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    # Threads of each onnxruntime session (docs/performance.md): 1 when every core runs its own
    # worker process or executor thread, more to spread one run over idle cores.
    intra_op_threads: int = Field(2, ge=1, le=256)
    inter_op_threads: int = Field(1, ge=1, le=256)
    # dlib's ResNet (the default embedder) holds the GIL for its whole call: in this process it
    # stalls every other thread, the event loop included (``/health`` waited up to ~160 ms), and
    # a worker embeds on one core. N > 0 runs it in N helper processes (~65 MiB RSS each; the
    # worker then holds ~40 MiB less): N calls at once, and the worker's threads run meanwhile
    # (inference/embedders/dlib_processes.py, bench/bench_dlib_processes.py). 0 (the default:
    # one helper took the worker and helper together past the 400 MB RSS goal under load).
    dlib_processes: int = Field(0, ge=0, le=64)
    # Threads of each session bulk enrollment runs (sessions of its own for onnxruntime models,
    # preloaded with the service's): its photos already keep every executor thread busy, and two
    # runs that each spread over both cores spent 40% more CPU per face
    # (bench/bench_bulk_enroll.py). 0: the sessions above.
    bulk_intra_op_threads: int = Field(1, ge=0, le=256)
    # Dynamic batching (inference/batching.py): calls of one model that meet share one run.
    # Embedders and liveness always; RetinaFace detection too when ``batch_detection`` (images
    # that pad to one tensor size). Results are the same as one call per request.
    batching: bool = True
    # Inputs (faces, or images for detection) in one run at most.
    batch_max_size: int = Field(8, ge=1, le=256)
    # How long the first call of a batch waits for company; 0: only calls that arrive while
    # every run slot is busy are batched, so a lone request never waits.
    batch_max_wait_ms: float = Field(0.0, ge=0.0, le=1000.0)
    # Runs of one model at once; further calls wait and are batched. Below
    # server.executor_threads only (else no call ever waits).
    batch_concurrency: int = Field(2, ge=1, le=64)
    batch_detection: bool = True
    # What ``auto`` (and a request naming no model) means; "auto": the best installed model.
    default_detector: str = "auto"
    default_embedder: str = "auto"
    # Embedders whose catalogue entry sums each face's vector with its mirror image's
    # (MobileFaceNet, w600k_mbf) do so; false: half their network time, vectors in a space of
    # their own (``+mirror=off``; galleries enrolled the other way: ``facerec gallery migrate``),
    # judged with the calibration measured with the mirror sum.
    mirror_sum: bool = True
    # Let ``auto`` (and so the defaults above) pick models whose licence forbids commercial use
    # (InsightFace weights). A model named explicitly is used whatever its licence.
    allow_non_commercial: bool = False


class LivenessSettings(BaseModel):
    # check_liveness default for add-face, register-multiple and recognize.
    check_by_default: bool = False
    # live_score at or above this is live: the middle of the gap between the spoof and the live
    # samples of faces-dev (BENCHMARKS.md, "Liveness").
    threshold: float = Field(0.4, ge=0.0, le=1.0)
    # Faces whose box cannot be enlarged this many times inside the image (tight crops) get no
    # verdict: the model judges the face's surroundings and scores such crops as spoofs.
    min_context_ratio: float = Field(1.5, ge=1.0)


class LimitSettings(BaseModel):
    max_upload_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1)
    min_side: int = Field(16, ge=1)
    # Detector input is downscaled so its longer side is at most this many pixels.
    detect_max_side: int = Field(1024, ge=64)
    max_images_per_request: int = Field(20, ge=1)
    # Peak memory one request may take: the copies of its encoded image plus everything decoding
    # allocates (decoder buffers, mode conversion, the BGR array, EXIF rotation), computed from the
    # header before decoding; an image that does not fit is refused (413 image_too_large).
    max_request_memory_mb: int = Field(200, ge=16)
    # Bytes of request bodies one worker process holds at once (each from its first byte until
    # its answer: its bytes, parsed JSON or form and image stay in memory until then, about
    # three times the body); a body that would pass it is refused with 429 ``overloaded``.
    # Never below the largest body limit.
    max_body_bytes_in_flight: int = Field(128 * 1024 * 1024, ge=1024 * 1024)
    # Sum of the header pixels over the images of one register-multiple (its total work);
    # beyond it the request is refused (413 too_many_pixels) before any image is decoded.
    max_pixels_per_request: int = Field(200_000_000, ge=1)
    # One bulk enrollment (``enroll-batch``): photos in all, their encoded bytes in all (kept
    # below the default request body limit, base64 included) and their header pixels in all.
    # Beyond any of them the whole batch is refused before any photo is decoded.
    max_bulk_images: int = Field(200, ge=1)
    max_bulk_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_bulk_pixels: int = Field(1_000_000_000, ge=1)
    # Detector input side for bulk enrollment: RetinaFace at 320 instead of 1024 px takes a
    # third of the time on camera-sized photos. A subject under 64 px tall at that side is
    # detected again at ``detect_max_side``'s scale on a crop around it, and a photo where it
    # finds no face is detected whole at ``detect_max_side`` (so bulk takes every photo single
    # enrollment takes); the landmarks of larger faces move a little (on
    # faces-dev MobileFaceNet vectors by a median cosine distance of 0.03 from single
    # enrollment's). None: ``detect_max_side``, the very vectors single enrollment stores.
    bulk_detect_max_side: int | None = Field(320, ge=64)

    @field_validator("bulk_detect_max_side", mode="before")
    @classmethod
    def _blank_side_is_none(cls, value: object) -> object:
        return None if value == "" else value
