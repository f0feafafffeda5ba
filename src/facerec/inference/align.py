"""Face alignment as pure functions: a 5-point similarity transform onto a chip template.

Landmarks are in the order of :class:`~facerec.inference.types.Detection`: left eye, right eye,
nose tip, left mouth corner, right mouth corner (left/right as seen in the image).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from facerec.inference.types import ImageBGR
from facerec.values import BBox, Detection

Points = NDArray[np.float32]
Affine = NDArray[np.float64]  # 2 x 3, maps image pixels to chip pixels

# The standard InsightFace/ArcFace template for 112x112 chips (pixel centres, x right, y down).
ARCFACE_112: Points = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

# Where detector-style landmarks (eye centres, nose tip, mouth corners) fall on the 150x150 chip
# that ``dlib.get_face_chip(size=150, padding=0.25)`` makes from dlib's own 5-point shape. Measured:
# RetinaFace landmarks of the 134 labelled faces-dev photos mapped through dlib's chip transform,
# per-point median, symmetrised about the face's mid-line (x ≈ 74.3); a face's five points sit on
# average 2 px from the template after the similarity fit. See
# bench/bench_verification.py for the comparison of the two alignment methods.
DLIB_150: Points = np.array(
    [
        [47.2, 44.2],
        [101.4, 44.2],
        [74.3, 79.1],
        [49.6, 100.3],
        [99.0, 100.3],
    ],
    dtype=np.float32,
)


def similarity_transform(src: NDArray[np.floating], dst: NDArray[np.floating]) -> Affine:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama (1991), without reflection, whose optimum has a closed form in 2-D. Both are (N, 2)
    with N ≥ 2 points that are not all equal.
    Returns the 2x3 matrix ``M`` with ``dst ≈ src @ M[:, :2].T + M[:, 2]``.
    """
    source = np.asarray(src, dtype=np.float64)
    target = np.asarray(dst, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2:
        raise ValueError(f"need two (N, 2) point arrays, got {source.shape} and {target.shape}")
    if source.shape[0] < 2:
        raise ValueError("need at least two points")
    src_mean = source.mean(axis=0)
    dst_mean = target.mean(axis=0)
    src_c = source - src_mean
    dst_c = target - dst_mean
    src_var = float((src_c**2).sum()) / len(source)
    if src_var <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    # The optimum in closed form: [[a, -b], [b, a]] = scale x rotation (no SVD: ~10x faster).
    cross = src_c[:, 0] * dst_c[:, 1] - src_c[:, 1] * dst_c[:, 0]
    a = float((src_c * dst_c).sum()) / len(source) / src_var
    b = float(cross.sum()) / len(source) / src_var
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = ((a, -b), (b, a))
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def transform_points(points: NDArray[np.floating], matrix: Affine) -> Points:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def template_for(size: int, template: Points = ARCFACE_112, base: int = 112) -> Points:
    """``template`` (made for ``base`` pixels) scaled to a ``size`` x ``size`` chip."""
    return (template * (size / base)).astype(np.float32)


def warp_chip(
    image_bgr: ImageBGR,
    landmarks: NDArray[np.floating],
    size: int = 112,
    template: Points = ARCFACE_112,
) -> ImageBGR:
    """The ``size`` x ``size`` chip with ``landmarks`` moved onto ``template`` (in chip pixels).

    Only the part of the image the chip covers is read (cost follows the face, not the photo).
    Large faces are first shrunk with area averaging so the bilinear warp does not alias (dlib's
    chip extractor does the same with an image pyramid); pixels outside the image are black.
    Works on any channel order: the chip has the image's.
    """
    import cv2

    matrix = similarity_transform(landmarks, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    # Shrink by a whole factor that keeps the chip's sampling at least 2x the new pixels.
    factor = max(1, int(1.0 / (2.0 * scale))) if scale < 0.5 else 1
    height, width = image_bgr.shape[:2]
    x1, y1, x2, y2 = chip_region(matrix, size, width, height, grid=factor)
    if x2 <= x1 or y2 <= y1:  # the chip lies wholly outside the image
        return np.zeros((size, size, *image_bgr.shape[2:]), np.uint8)
    source = image_bgr[y1:y2, x1:x2]
    matrix = _compose(matrix, np.array([[1.0, 0.0, x1], [0.0, 1.0, y1]]))
    if factor > 1:
        region_h, region_w = source.shape[:2]
        new_w, new_h = max(1, round(region_w / factor)), max(1, round(region_h / factor))
        source = np.asarray(
            cv2.resize(source, (new_w, new_h), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        shrink = np.diag([new_w / region_w, new_h / region_h])
        # Pixel centres: x_small + 0.5 = (x + 0.5) * s.
        offset = 0.5 * np.array([new_w / region_w, new_h / region_h]) - 0.5
        to_small = np.hstack([shrink, offset[:, None]])
        matrix = _compose(matrix, _invert(to_small))
    chip = cv2.warpAffine(
        source,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.asarray(chip, dtype=np.uint8)


def chip_region(
    matrix: Affine, size: int, width: int, height: int, *, grid: int = 1
) -> tuple[int, int, int, int]:
    """The pixels (x1, y1, x2, y2; end exclusive) of a ``width`` x ``height`` image that the
    ``size`` chip of ``matrix`` samples, with a margin for interpolation and area shrinking,
    its edges on multiples of ``grid`` (so a shrink averages the same blocks as on the whole
    image), clipped to the image."""
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5] * 2])
    inverse = _invert(matrix)
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    margin = 2 * grid + 2
    x1 = max(0, (int(np.floor(points[:, 0].min())) - margin) // grid * grid)
    y1 = max(0, (int(np.floor(points[:, 1].min())) - margin) // grid * grid)
    x2 = min(width, -(-(int(np.ceil(points[:, 0].max())) + margin) // grid) * grid)
    y2 = min(height, -(-(int(np.ceil(points[:, 1].max())) + margin) // grid) * grid)
    return x1, y1, x2, y2


def chip_scale(landmarks: NDArray[np.floating], template: Points = ARCFACE_112) -> float:
    """Chip pixels per image pixel when ``landmarks`` are aligned onto ``template``: below 0.5
    the image holds more detail than the chip can use."""
    matrix = similarity_transform(landmarks, template)
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def _invert(matrix: Affine) -> Affine:
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, (-linear @ matrix[:, 2])[:, None]])


def _compose(outer: Affine, inner: Affine) -> Affine:
    """The affine map ``outer ∘ inner``."""
    linear = outer[:, :2] @ inner[:, :2]
    return np.hstack([linear, (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def mirrored_faces(pixels: ImageBGR, faces: list[Detection]) -> tuple[ImageBGR, list[Detection]]:
    """The mirror image of the part of ``pixels`` around ``faces`` (each box grown by its own
    size on every side: more than any chip takes) and the faces in it: what mirroring the whole
    photo gives the embedder, for a copy of the faces' surroundings only."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = width, height, 0, 0
    for face in faces:
        box = face.bbox
        side = max(box.width, box.height)
        x1, y1 = min(x1, int(box.x1 - side)), min(y1, int(box.y1 - side))
        x2, y2 = max(x2, math.ceil(box.x2 + side)), max(y2, math.ceil(box.y2 + side))
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    if x2 <= x1 or y2 <= y1:
        x1, y1, x2, y2 = 0, 0, width, height
    region = np.ascontiguousarray(pixels[y1:y2, x1:x2][:, ::-1])
    shifted = [
        replace(
            f,
            bbox=BBox(f.bbox.x1 - x1, f.bbox.y1 - y1, f.bbox.x2 - x1, f.bbox.y2 - y1),
            landmarks=_shift(f.landmarks, x1, y1),
        )
        for f in faces
    ]
    return region, [mirror_detection(f, x2 - x1) for f in shifted]


def _shift(points: NDArray[np.float32] | None, dx: int, dy: int) -> NDArray[np.float32] | None:
    if points is None:
        return None
    return (points - np.array([dx, dy], np.float32)).astype(np.float32)


def mirror_detection(face: Detection, width: int) -> Detection:
    """The same face in the horizontally mirrored image (left/right landmarks swap roles)."""
    box = face.bbox
    mirrored = BBox(width - box.x2, box.y1, width - box.x1, box.y2)
    marks = None
    if face.landmarks is not None:
        points = face.landmarks.copy()
        points[:, 0] = width - points[:, 0]
        marks = points[[1, 0, 2, 4, 3]].astype(np.float32)
    return Detection(mirrored, face.score, marks)
