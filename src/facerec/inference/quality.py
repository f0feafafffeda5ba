"""Face quality: a 0-100 score from five factors, and the reasons a face falls short.

Factors (each 0-100): size of the face box, sharpness (variance of the Laplacian on the face
resized to a fixed height, so it does not depend on resolution), exposure (mean brightness and
clipped pixels), pose (roll from the eye line, yaw from the nose's offset between the eyes, pitch
from the nose's height between eyes and mouth) and the detector's own score. The overall score is
their weighted mean. Reason codes are stable and shared with the enrollment gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from facerec.inference.types import ImageBGR
from facerec.values import Detection

WEIGHTS = {"size": 0.25, "sharpness": 0.25, "exposure": 0.15, "pose": 0.20, "detector": 0.15}


@dataclass(frozen=True)
class QualityBar:
    """What an enrollment-grade face must meet; each miss adds a reason code."""

    min_face_px: float = 40.0
    min_sharpness: float = 25.0
    min_brightness: float = 40.0
    max_brightness: float = 215.0
    max_yaw_ratio: float = 0.45
    max_roll_degrees: float = 30.0
    max_pitch_offset: float = 0.35
    min_detector_score: float = 0.7


@dataclass(frozen=True)
class QualityReport:
    score: float
    factors: dict[str, float]
    measurements: dict[str, float]
    reasons: tuple[str, ...] = field(default=())


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 100 at ``high``, linear between, clamped."""
    if high == low:
        return 100.0 if value >= high else 0.0
    return float(min(100.0, max(0.0, (value - low) / (high - low) * 100.0)))


def _face_crop(image: ImageBGR, face: Detection) -> NDArray[np.uint8]:
    h, w = image.shape[:2]
    box = face.bbox.clipped(w, h)
    x1, y1 = int(box.x1), int(box.y1)
    x2, y2 = max(math.ceil(box.x2), x1 + 1), max(math.ceil(box.y2), y1 + 1)
    crop = image[y1:y2, x1:x2]
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.size else np.zeros((1, 1), np.uint8)
    return np.asarray(gray, dtype=np.uint8)


def pose_measurements(landmarks: NDArray[np.float32]) -> dict[str, float]:
    """Roll (degrees), yaw ratio and pitch offset from the five landmarks."""
    left_eye, right_eye, nose, left_mouth, right_mouth = (
        landmarks[i].astype(float) for i in range(5)
    )
    eye_vec = right_eye - left_eye
    eye_dist = float(np.hypot(*eye_vec)) or 1.0
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (left_mouth + right_mouth) / 2
    axis = mouth_mid - eye_mid
    axis_len = float(np.hypot(*axis)) or 1.0
    # Project the nose onto the face's own axes so in-plane rotation does not count as yaw.
    unit_x = eye_vec / eye_dist
    unit_y = axis / axis_len
    rel = nose - eye_mid
    yaw_ratio = abs(float(np.dot(rel, unit_x))) / eye_dist
    pitch_pos = float(np.dot(rel, unit_y)) / axis_len  # ~0.5 to 0.6 for a frontal face
    return {"roll_degrees": roll, "yaw_ratio": yaw_ratio, "pitch_offset": abs(pitch_pos - 0.55)}


def assess(
    image: ImageBGR, face: Detection, bar: QualityBar | None = None, *, pixel_scale: float = 1.0
) -> QualityReport:
    """``pixel_scale``: how many original pixels one pixel of ``image`` stands for (a reduced
    decode), so the face's size is judged in the original photo."""
    bar = bar or QualityBar()
    gray = _face_crop(image, face)
    side = min(face.bbox.width, face.bbox.height) * pixel_scale
    scaled = cv2.resize(gray, (max(1, round(gray.shape[1] * 112 / max(gray.shape[0], 1))), 112))
    sharpness = float(cv2.Laplacian(scaled, cv2.CV_64F).var())
    brightness = float(gray.mean())
    clipped = float(((gray <= 5) | (gray >= 250)).mean())
    measurements = {
        "face_px": side,
        "sharpness": sharpness,
        "brightness": brightness,
        "clipped_fraction": clipped,
        "detector_score": face.score,
    }
    exposure = min(_ramp(brightness, 20, 80), _ramp(-brightness, -240, -180))
    factors = {
        "size": _ramp(side, 20, 112),
        "sharpness": _ramp(math.log10(max(sharpness, 1.0)), 1.0, 2.7),
        "exposure": exposure * (1.0 - min(1.0, clipped * 2.0)),
        "detector": _ramp(face.score, 0.5, 1.0),
    }
    reasons: list[str] = []
    if face.landmarks is not None:
        pose = pose_measurements(face.landmarks)
        measurements.update(pose)
        yaw_score = _ramp(-pose["yaw_ratio"], -0.6, -0.1)
        roll_score = _ramp(-abs(pose["roll_degrees"]), -45.0, -10.0)
        pitch_score = _ramp(-pose["pitch_offset"], -0.5, -0.15)
        factors["pose"] = min(yaw_score, roll_score, pitch_score)
        if (
            pose["yaw_ratio"] > bar.max_yaw_ratio
            or abs(pose["roll_degrees"]) > bar.max_roll_degrees
            or pose["pitch_offset"] > bar.max_pitch_offset
        ):
            reasons.append("extreme_pose")
        if not _landmarks_inside(face, face.landmarks):
            reasons.append("occluded_landmarks")
    else:
        factors["pose"] = 70.0  # unknown without landmarks: neither rewarded nor failed
    score = sum(WEIGHTS[name] * value for name, value in factors.items())
    if side < bar.min_face_px:
        reasons.append("too_small")
    if sharpness < bar.min_sharpness:
        reasons.append("blurred")
    if brightness > bar.max_brightness:
        reasons.append("overexposed")
    if brightness < bar.min_brightness:
        reasons.append("underexposed")
    if face.score < bar.min_detector_score:
        reasons.append("low_detector_score")
    rounded = {name: round(value, 1) for name, value in factors.items()}
    return QualityReport(round(score, 1), rounded, measurements, tuple(reasons))


def _landmarks_inside(face: Detection, landmarks: NDArray[np.float32]) -> bool:
    """Landmarks far outside the box mean the detector guessed them (occlusion, crop)."""
    box = face.bbox
    margin_x, margin_y = 0.1 * box.width, 0.1 * box.height
    xs, ys = landmarks[:, 0], landmarks[:, 1]
    return bool(
        np.all(xs >= box.x1 - margin_x)
        and np.all(xs <= box.x2 + margin_x)
        and np.all(ys >= box.y1 - margin_y)
        and np.all(ys <= box.y2 + margin_y)
    )
