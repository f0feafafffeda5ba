"""The part every pack-file ONNX detector (SCRFD, YOLO-face, YuNet) shares.

A detector of this kind is one ONNX file in ``model_dir/<pack>/<install_name>`` (imported or pulled
with ``facerec models``); without it the model is "not installed". ``detect`` is the same for every
family: :meth:`prepare` turns the image into the network input (letterbox or padding, channel order,
normalisation), the session runs, :meth:`decode` turns the named outputs into candidate boxes,
scores and landmarks in network-input pixels, and :func:`~.decoding.to_detections` applies NMS and
maps them back to the image. A family states only ``prepare`` and ``decode``.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerec.errors import ModelLoadError, ModelNotAvailableError
from facerec.inference.base import FaceDetector, RuntimeOptions, onnx_session
from facerec.inference.catalogue import ModelEntry
from facerec.inference.detectors.decoding import Array, Letterboxed, letterbox, to_detections
from facerec.inference.types import ImageBGR
from facerec.values import Detection

Outputs = dict[str, Array]
DEFAULT_SIZE = 640  # the input side every family was trained at


@dataclass(frozen=True)
class Candidates:
    """Decoded candidates in network-input pixels, already filtered by the score threshold."""

    boxes: Array  # (K, 4) x1y1x2y2
    scores: Array  # (K,)
    points: Array  # (K, 5, 2)

    @staticmethod
    def empty() -> Candidates:
        return Candidates(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )


class OnnxPackDetector(FaceDetector):
    def __init__(
        self,
        entry: ModelEntry,
        model_dir: Path,
        *,
        session: Any | None = None,
        model_path: Path | None = None,
    ) -> None:
        super().__init__(entry.model_info({"file": entry.install_name}), session=session)
        self.entry = entry
        self.path = model_path or Path(model_dir) / entry.pack / entry.install_name

    def is_installed(self) -> bool:
        return self._injected or self.path.is_file()

    def not_installed_reason(self) -> str:
        if self.is_installed():
            return ""
        return (
            f"model file {self.path} is missing: import it with `facerec models import "
            f"{self.entry.name} FILE`"
            + (f" or `facerec models pull {self.entry.name}`" if self._downloadable() else "")
        )

    def _downloadable(self) -> bool:
        return any(f.url for f in self.entry.files)

    def weights_bytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        if not self.is_installed():
            raise ModelNotAvailableError(
                f"model {self.name!r} is not installed: {self.not_installed_reason()}",
                code="model_not_installed",
                model=self.name,
            )
        return onnx_session(self.path, runtime)

    def input_size(self) -> tuple[int, int] | None:
        """(height, width) the graph fixes, or None when it takes any size."""
        shape = list(self.session.get_inputs()[0].shape)
        if len(shape) != 4:
            raise ModelLoadError(f"model {self.name!r} input has shape {shape}, expected 4-D")
        height, width = shape[2], shape[3]
        if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
            return height, width
        return None

    def input_side(self) -> int:
        """Every image is letterboxed into the network's input: one no longer than its shorter
        side is never shrunk again."""
        return min(self.input_size() or (DEFAULT_SIZE, DEFAULT_SIZE))

    def fit(self, image: ImageBGR, *, pad: int = 0) -> Letterboxed:
        """The image letterboxed into the fixed input, or into the default square when the graph
        takes any size."""
        height, width = self.input_size() or (DEFAULT_SIZE, DEFAULT_SIZE)
        return letterbox(image, height, width, pad=pad)

    @abstractmethod
    def prepare(self, image: ImageBGR) -> tuple[Array, Letterboxed]:
        """The network input (1, 3, H, W) and how the image was placed in it."""

    @abstractmethod
    def decode(self, outputs: Outputs, height: int, width: int, threshold: float) -> Candidates:
        """Candidates scoring at least ``threshold`` from the outputs for an H × W input."""

    def detect(
        self,
        image: ImageBGR,
        *,
        conf_threshold: float,
        iou_threshold: float,
        max_faces: int,
    ) -> list[Detection]:
        height, width = image.shape[:2]
        tensor, placed = self.prepare(image)
        session = self.session
        names = [output.name for output in session.get_outputs()]
        values = session.run(names, {session.get_inputs()[0].name: tensor})
        outputs = {
            name: np.asarray(value, np.float32) for name, value in zip(names, values, strict=True)
        }
        found = self.decode(outputs, tensor.shape[2], tensor.shape[3], conf_threshold)
        if len(found.scores) == 0:
            return []
        return to_detections(
            found.boxes,
            found.scores,
            found.points,
            iou_threshold=iou_threshold,
            max_faces=max_faces,
            width=width,
            height=height,
            scale=placed.scale,
        )
