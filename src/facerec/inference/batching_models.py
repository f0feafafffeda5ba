"""Batching fronts: the same interface as the models, with the model runs shared between callers.

:func:`batching_front` wraps a model in a front of its task (an embedder stays a
:class:`FaceEmbedder`, ...) whose task method prepares the caller's inputs in the caller's thread
(alignment, crops, padding), hands them to the model's :class:`MicroBatcher` and finishes the
rows that come back (decoding boxes), so only the network run itself is shared. Everything else
(load, metadata, thresholds) is the wrapped model's. The :class:`ModelManager` gives fronts to
``use()`` callers; ``peek()`` still gives the model.

- Embedders with aligned-chip batching (``chips`` + ``embed_chips``: dlib, the ONNX embedders):
  always batched, the chips of every caller in one ``embed_chips`` run.
- MiniFASNet liveness: the crops of every caller in one run per network.
- RetinaFace detection: images that pad to the same tensor size share a run (the resize policy
  caps the longer side, so large photos of one aspect ratio and a camera's frames do).

Other models get no front (``None``) and are called as they are.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from facerec.inference.base import (
    AlignedChip,
    FaceDetector,
    FaceEmbedder,
    LivenessModel,
    LivenessScore,
    Model,
    RuntimeOptions,
)
from facerec.inference.batching import BatchPolicy, MicroBatcher
from facerec.inference.calibration import Calibration
from facerec.inference.types import ImageBGR
from facerec.values import Detection

Array = NDArray[Any]


@runtime_checkable
class ChipEmbedder(Protocol):
    def chips(self, image: ImageBGR, faces: Sequence[Detection]) -> Sequence[Array]: ...

    def embed_chips(self, chips: Sequence[Array]) -> NDArray[np.float32]: ...


class _Front:
    """Model lifecycle and metadata forwarded to the wrapped model."""

    inner: Model
    batcher: MicroBatcher[Any, Any]

    def __getattr__(self, name: str) -> Any:  # model-specific attributes (spec, alignment, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def loaded(self) -> bool:
        return self.inner.loaded

    @property
    def session(self) -> Any:
        return self.inner.session

    @property
    def provider(self) -> str:
        return self.inner.provider

    def is_installed(self) -> bool:
        return self.inner.is_installed()

    def not_installed_reason(self) -> str:
        return self.inner.not_installed_reason()

    def weights_bytes(self) -> int:
        return self.inner.weights_bytes()

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        raise NotImplementedError("a batching front never builds sessions; its model does")

    def load(self, runtime: RuntimeOptions) -> None:
        self.inner.load(runtime)

    def unload(self) -> None:
        self.inner.unload()


class BatchedEmbedder(_Front, FaceEmbedder):
    def __init__(self, inner: FaceEmbedder, policy: BatchPolicy) -> None:
        if not isinstance(inner, ChipEmbedder):
            raise TypeError(f"{inner.name!r} cannot embed aligned chips in batches")
        FaceEmbedder.__init__(self, inner.info)
        self.inner = inner
        self._chips: ChipEmbedder = inner
        self.batcher = MicroBatcher(self._run, policy, name=inner.name)

    def _run(self, chips: Sequence[Array]) -> list[NDArray[np.float32]]:
        return list(self._chips.embed_chips(chips))

    def embed(self, image: ImageBGR, faces: Sequence[Detection]) -> NDArray[np.float32]:
        inner = self.inner
        assert isinstance(inner, FaceEmbedder)
        if not faces:
            return inner.embed(image, faces)
        rows = self.batcher.submit(self._chips.chips(image, faces))
        return np.asarray(np.stack(rows), dtype=np.float32)

    # Everything below: the wrapped embedder's own answers.
    def _embedder(self) -> FaceEmbedder:
        inner = self.inner
        assert isinstance(inner, FaceEmbedder)
        return inner

    @property
    def dim(self) -> int:
        return self._embedder().dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._embedder().dim = value

    @property
    def metric(self) -> str:
        return self._embedder().metric

    @metric.setter
    def metric(self, value: str) -> None:
        self._embedder().metric = value

    @property
    def distance_threshold(self) -> float:
        return self._embedder().distance_threshold

    @distance_threshold.setter
    def distance_threshold(self, value: float) -> None:
        self._embedder().distance_threshold = value

    @property
    def similarity_scale(self) -> float:
        return self._embedder().similarity_scale

    @similarity_scale.setter
    def similarity_scale(self, value: float) -> None:
        self._embedder().similarity_scale = value

    @property
    def mirror_averaged(self) -> bool:
        return self._embedder().mirror_averaged

    @mirror_averaged.setter
    def mirror_averaged(self, value: bool) -> None:
        self._embedder().mirror_averaged = value

    @property
    def calibration(self) -> Calibration | None:
        return self._embedder().calibration

    @calibration.setter
    def calibration(self, value: Calibration | None) -> None:
        self._embedder().calibration = value

    @property
    def legacy_space(self) -> str | None:
        return self._embedder().legacy_space

    @legacy_space.setter
    def legacy_space(self, value: str | None) -> None:
        self._embedder().legacy_space = value

    @property
    def space(self) -> str:
        return self._embedder().space

    def space_settings(self) -> tuple[tuple[str, str], ...]:
        return self._embedder().space_settings()

    def chip_geometry(self) -> tuple[int, NDArray[np.float32]]:
        return self._embedder().chip_geometry()

    def chips_of(self, image: ImageBGR, faces: Sequence[Detection]) -> list[AlignedChip | None]:
        return self._embedder().chips_of(image, faces)

    def embed_aligned(self, chips: Sequence[AlignedChip]) -> NDArray[np.float32]:
        return self._embedder().embed_aligned(chips)

    def distance(self, a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
        return self._embedder().distance(a, b)

    def similarity(self, distance: float) -> float:
        return self._embedder().similarity(distance)

    def distance_for_similarity(self, similarity: float) -> float:
        return self._embedder().distance_for_similarity(similarity)


class BatchedMiniFASNet(_Front, LivenessModel):
    """Each face's crops (one per network) from every caller go through each network once."""

    def __init__(self, inner: LivenessModel, policy: BatchPolicy) -> None:
        from facerec.inference.liveness.minifasnet import MiniFASNetLiveness

        if not isinstance(inner, MiniFASNetLiveness):
            raise TypeError(f"{inner.name!r} is not MiniFASNet")
        LivenessModel.__init__(self, inner.info)
        self.inner: MiniFASNetLiveness = inner
        self.batcher = MicroBatcher(self._run, policy, name=inner.name)

    def score(self, image: ImageBGR, faces: Sequence[Detection]) -> list[LivenessScore]:
        if not faces:
            return []
        per_network = self.inner.crops(image, faces)
        inputs = [tuple(crops[i] for crops in per_network) for i in range(len(faces))]
        scores: list[LivenessScore] = self.batcher.submit(inputs)
        return scores

    def _run(self, inputs: Sequence[tuple[NDArray[np.float32], ...]]) -> list[LivenessScore]:
        networks = len(inputs[0])
        return self.inner.score_crops(
            [np.stack([face[n] for face in inputs]) for n in range(networks)]
        )


class BatchedRetinaFace(_Front, FaceDetector):
    """Images whose padded tensors have one size share a run; decoding stays with each caller."""

    def __init__(self, inner: FaceDetector, policy: BatchPolicy) -> None:
        from facerec.inference.detectors.retinaface import RetinaFaceDetector

        if not isinstance(inner, RetinaFaceDetector):
            raise TypeError(f"{inner.name!r} is not RetinaFace")
        FaceDetector.__init__(self, inner.info)
        self.inner = inner
        self.retinaface = inner  # the same model, typed for its shared run
        self.batcher = MicroBatcher(self._run, policy, name=inner.name)

    def detect(
        self,
        image: ImageBGR,
        *,
        conf_threshold: float,
        iou_threshold: float,
        max_faces: int,
    ) -> list[Detection]:
        from facerec.inference.detectors.retinaface import RetinaFaceDetector, input_tensor

        tensor = input_tensor(image)
        key: Hashable = tuple(tensor.shape[1:])
        ((loc, conf, marks),) = self.batcher.submit([tensor], key=key)
        return RetinaFaceDetector.detections(
            image,
            tensor,
            (loc, conf, marks),
            conf_threshold=conf_threshold,
            iou_threshold=iou_threshold,
            max_faces=max_faces,
        )

    def _run(self, tensors: Sequence[NDArray[np.float32]]) -> list[tuple[Array, Array, Array]]:
        batch = tensors[0][None] if len(tensors) == 1 else np.stack(tensors)
        loc, conf, marks = self.retinaface.run(batch)
        return [(loc[i], conf[i], marks[i]) for i in range(len(tensors))]


def batching_front(model: Model, policy: BatchPolicy, *, detection: bool = True) -> Model | None:
    """The batching front of ``model``, or None when its runs cannot be shared."""
    from facerec.inference.detectors.retinaface import RetinaFaceDetector
    from facerec.inference.liveness.minifasnet import MiniFASNetLiveness

    if isinstance(model, FaceEmbedder) and isinstance(model, ChipEmbedder):
        return BatchedEmbedder(model, policy)
    if isinstance(model, MiniFASNetLiveness):
        return BatchedMiniFASNet(model, policy)
    if detection and isinstance(model, RetinaFaceDetector):
        return BatchedRetinaFace(model, policy)
    return None
