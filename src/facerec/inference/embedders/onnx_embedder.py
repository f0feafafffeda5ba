"""Generic ONNX embedder for models trained on 112x112 chips of the ArcFace 5-point template.

One class serves every such model; what differs between them (input name, channel order,
normalisation, mirror sum, calibration) is a frozen :class:`EmbedderSpec` from the model
catalogue. The weights come from a model pack in ``model_dir / <pack> / <file>``; without the file
the model is "not installed". Outputs are L2-normalised, so the cosine distance is ``1 - a·b`` and
vectors suit an inner-product index.

A pack that accepts several files (``version_from_file``) versions its embedding space by the
installed file: its SHA-256, computed once per (path, size, mtime), names a known file or gives
``tofu-<sha[:12]>``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.errors import FaceRejectedError, ModelLoadError, ModelNotAvailableError
from facerec.inference import catalogue
from facerec.inference.align import ARCFACE_112, Points, template_for, warp_chip
from facerec.inference.base import AlignedChip, FaceEmbedder, RuntimeOptions, onnx_session
from facerec.inference.catalogue import EmbedderSpec
from facerec.inference.downloads import sha256_file
from facerec.inference.onnx_graph import OnnxFormatError, free_first_dimension
from facerec.inference.types import ImageBGR, ModelInfo, ModelTask
from facerec.values import Detection

__all__ = [
    "MOBILEFACENET_SPEC",
    "W600K_MBF_INT8_SPEC",
    "W600K_MBF_SPEC",
    "EmbedderSpec",
    "OnnxArcFaceEmbedder",
    "OnnxEmbedderSession",
    "free_batch_dimension",
    "installed_sha256",
    "l2_normalise",
    "preprocess",
    "wrap_session",
]

MOBILEFACENET_SPEC = catalogue.MOBILEFACENET.embedder_spec()
W600K_MBF_SPEC = catalogue.W600K_MBF.embedder_spec()
W600K_MBF_INT8_SPEC = catalogue.W600K_MBF_INT8.embedder_spec()


def preprocess(chips: Sequence[ImageBGR], spec: EmbedderSpec) -> NDArray[np.float32]:
    """BGR chips (N, S, S, 3) uint8 → network tensor (N, 3, S, S) float32."""
    batch = np.stack(chips).astype(np.float32)
    if spec.channels == "rgb":
        batch = batch[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    batch = (batch * np.float32(spec.pixel_scale) - mean) / std
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


def l2_normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


@dataclass
class OnnxEmbedderSession:
    """An onnxruntime session plus the tensor names and the batch size it accepts."""

    session: Any
    input_name: str
    output_name: str
    fixed_batch: int | None  # None: any batch size

    def get_providers(self) -> list[str]:
        providers = getattr(self.session, "get_providers", None)
        return list(providers()) if providers is not None else ["CPUExecutionProvider"]


def wrap_session(session: Any, spec: EmbedderSpec) -> OnnxEmbedderSession:
    """Resolve names and batch size of a loaded (or fake) session against ``spec``."""
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    input_name = spec.input_name or inputs[0].name
    output_name = spec.output_name or outputs[0].name
    by_name = {item.name: item for item in inputs}
    if input_name not in by_name:
        raise ModelLoadError(
            f"model {spec.name!r} has no input {input_name!r}", inputs=sorted(by_name)
        )
    if output_name not in {item.name for item in outputs}:
        raise ModelLoadError(f"model {spec.name!r} has no output {output_name!r}")
    shape = list(by_name[input_name].shape)
    expected = (3, spec.chip_size, spec.chip_size)
    if len(shape) != 4 or any(
        isinstance(got, int) and got != want for got, want in zip(shape[1:], expected, strict=True)
    ):
        raise ModelLoadError(
            f"model {spec.name!r} input {input_name!r} has shape {shape}, "
            f"expected [N, 3, {spec.chip_size}, {spec.chip_size}]"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    if spec.any_batch:  # declared fixed, runs any (and _create_session freed the dimension)
        batch = None
    if not spec.batch_invariant:
        batch = 1
    return OnnxEmbedderSession(session, input_name, output_name, batch)


def free_batch_dimension(path: Path, spec: EmbedderSpec) -> bytes:
    """The graph with the batch dimension of its input and output made symbolic.

    For graphs that declare batch 1 but run any batch: onnxruntime otherwise refuses a batch
    and warns that the output shape differs from the declared one. Edited on the file's bytes
    (:mod:`facerec.inference.onnx_graph`): the ``onnx`` package took 1.2-1.5 s to import at
    every start.
    """
    try:
        return free_first_dimension(path.read_bytes(), spec.input_name, spec.output_name)
    except OnnxFormatError as exc:
        raise ModelLoadError(f"cannot read ONNX model: {exc}", path=str(path)[:200]) from exc


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def installed_sha256(path: Path) -> str:
    """SHA-256 of ``path``, computed once per (path, size, modification time)."""
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


class OnnxArcFaceEmbedder(FaceEmbedder):
    metric = "cosine"

    def __init__(
        self,
        spec: EmbedderSpec,
        model_dir: Path,
        *,
        session: Any | None = None,
        model_path: Path | None = None,
        mirror_sum: bool = True,
    ) -> None:
        entry = catalogue.find(spec.name)
        # ``mirror_sum=False`` (models.mirror_sum) turns the spec's mirror sum off: half the
        # network runs, vectors in their own space (``+mirror=off``).
        self.mirror_averaged = spec.mirror_sum and mirror_sum
        extra = {"file": spec.file_name, "mirror_sum": self.mirror_averaged}
        if entry is not None and entry.embedder == spec:
            info = entry.model_info(extra)
        else:  # a spec made outside the catalogue (tests, benchmarks)
            info = ModelInfo(
                name=spec.name,
                task=ModelTask.EMBEDDING,
                family=spec.family,
                version=spec.version,
                source=f"pack:{spec.pack}",
                license=spec.license,
                description=spec.description,
                extra=extra,
            )
        wrapped = wrap_session(session, spec) if session is not None else None
        super().__init__(info, session=wrapped)
        self.spec = spec
        self.dim = spec.dim
        self.distance_threshold = spec.distance_threshold
        self.similarity_scale = spec.similarity_scale
        self.legacy_space = spec.legacy_space
        self.path = model_path or Path(model_dir) / spec.pack / spec.file_name
        self.template = template_for(spec.chip_size, ARCFACE_112)
        self._session_version: str | None = None  # the version of the file the session holds

    @property
    def version(self) -> str:
        if not self.spec.version_from_file:
            return self.spec.version
        if self._session_version is not None and self.loaded:
            return self._session_version
        return self._file_version()

    def _file_version(self) -> str:
        if not self.spec.version_from_file or not self.is_installed():
            return self.spec.version
        return catalogue.file_version(self.spec.files, installed_sha256(self.path))

    def space_settings(self) -> tuple[tuple[str, str], ...]:
        return (
            ("align", f"{self.spec.alignment}-{self.spec.chip_size}"),
            ("mirror", "sum" if self.mirror_averaged else "off"),
        )

    def is_installed(self) -> bool:
        return self.path.is_file()

    def not_installed_reason(self) -> str:
        if self.is_installed():
            return ""
        entry = catalogue.find(self.spec.name)
        if entry is not None and entry.pack == self.spec.pack:
            return f"model file {self.path} is missing: {entry.install_hint()}"
        return (
            f"model file {self.path} is missing: pull or import the {self.spec.pack!r} model pack"
        )

    def weights_bytes(self) -> int:
        return self.path.stat().st_size if self.is_installed() else 0

    def _create_session(self, runtime: RuntimeOptions) -> OnnxEmbedderSession:
        if not self.is_installed():
            raise ModelNotAvailableError(
                f"model {self.name!r} is not installed: {self.not_installed_reason()}",
                code="model_not_installed",
                model=self.name,
            )
        self._session_version = self._file_version()
        source = free_batch_dimension(self.path, self.spec) if self.spec.any_batch else self.path
        return wrap_session(onnx_session(source, runtime), self.spec)

    def chips(self, image: ImageBGR, faces: Sequence[Detection]) -> list[ImageBGR]:
        """The aligned BGR chips, one per face; a face without landmarks cannot be aligned."""
        result: list[ImageBGR] = []
        for face in faces:
            if face.landmarks is None:
                raise FaceRejectedError(
                    f"model {self.name!r} needs five facial landmarks; the detector gave none",
                    code="landmarks_required",
                )
            result.append(warp_chip(image, face.landmarks, self.spec.chip_size, self.template))
        return result

    def embed(self, image: ImageBGR, faces: Sequence[Detection]) -> NDArray[np.float32]:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_chips(self.chips(image, faces))

    def chip_geometry(self) -> tuple[int, Points]:
        return self.spec.chip_size, self.template

    def embed_aligned(self, chips: Sequence[AlignedChip]) -> NDArray[np.float32]:
        """Kept chips re-aligned to this model's template, embedded in one batch."""
        size = self.spec.chip_size
        return self.embed_chips(
            [warp_chip(c.pixels, c.landmarks, size, self.template) for c in chips]
        )

    def embed_chips(self, chips: Sequence[ImageBGR]) -> NDArray[np.float32]:
        """L2-normalised embeddings of aligned BGR chips, shape (len(chips), dim)."""
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        tensor = preprocess(chips, self.spec)
        if not self.mirror_averaged:
            return l2_normalise(self._run(tensor))
        # The faces and their mirror images in one run (a batch-invariant graph gives each the
        # vector it gives alone; a fixed-batch or batch-dependent one runs them one by one).
        both = self._run(np.concatenate([tensor, tensor[..., ::-1]]))
        return l2_normalise(both[: len(chips)] + both[len(chips) :])

    def _run(self, tensor: NDArray[np.float32]) -> NDArray[np.float32]:
        wrapped: OnnxEmbedderSession = self.session
        step = wrapped.fixed_batch or len(tensor)
        parts: list[NDArray[np.float32]] = []
        for start in range(0, len(tensor), step):
            chunk = tensor[start : start + step]
            if len(chunk) < step:  # a fixed batch larger than 1: pad the last chunk
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=np.float32)
                chunk = np.concatenate([chunk, pad])
            (output,) = wrapped.session.run([wrapped.output_name], {wrapped.input_name: chunk})
            parts.append(np.asarray(output, dtype=np.float32).reshape(len(chunk), -1))
        out = np.concatenate(parts)[: len(tensor)]
        if out.shape[1] != self.dim:
            raise ModelLoadError(
                f"model {self.name!r} returned {out.shape[1]} values per face, expected {self.dim}"
            )
        return out
