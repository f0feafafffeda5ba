"""Migration building blocks: kept chips survive storage, any embedder re-aligns them, and the
report compares two spaces on a collection's own faces."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from facerec.domain.chips import decode_chip, encode_chip
from facerec.domain.migration_report import compare_spaces
from facerec.inference.align import DLIB_150
from facerec.inference.base import AlignedChip
from facerec.values import Face


def _face(face_id: str, person: str, vector: list[float]) -> Face:
    return Face(
        id=face_id,
        person_id=person,
        collection="c",
        space="s",
        quality=50.0,
        bbox=None,
        image_sha256=None,
        created_at=datetime.now(UTC),
        embedding=np.asarray(vector, dtype=np.float32),
    )


def test_chip_round_trip_is_lossless() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (150, 150, 3), dtype=np.uint8)
    chip = AlignedChip(pixels, DLIB_150.copy())
    stored = encode_chip(chip)
    assert stored.format == "png" and len(stored.landmarks) == 5
    back = decode_chip(stored)
    assert np.array_equal(back.pixels, pixels)
    assert np.allclose(back.landmarks, DLIB_150)


def test_report_counts_pairs_and_changed_answers() -> None:
    # Two persons, two faces each. The old space confuses a2 with b; the new one does not.
    old = [
        (_face("a1", "A", [0.0, 0.0]), "o1"),
        (_face("a2", "A", [1.0, 0.0]), "o2"),
        (_face("b1", "B", [1.1, 0.0]), "o3"),
        (_face("b2", "B", [1.3, 0.0]), "o4"),
    ]
    new = [
        (_face("n1", "A", [0.0, 0.0]), "o1"),
        (_face("n2", "A", [0.1, 0.0]), "o2"),
        (_face("n3", "B", [2.0, 0.0]), "o3"),
        (_face("n4", "B", [2.1, 0.0]), "o4"),
    ]
    report = compare_spaces(old, new, {"old": ("l2", 0.5), "new": ("l2", 0.5)}, [("C", "c1")])
    assert report["faces_compared"] == 4 and report["persons"] == 2
    assert report["old"]["same_person"]["pairs"] == 2
    assert report["old"]["different_person"]["pairs"] == 4
    assert report["new"]["different_within_threshold"] == 0
    assert report["old"]["different_within_threshold"] >= 1
    top1 = report["top1"]
    assert top1["correct_new"] == 4 and top1["correct_old"] < 4
    assert {c["face_id"] for c in top1["changed"]} >= {"n2"}
    assert report["needs_new_photo"] == {
        "count": 1,
        "faces": [{"person_id": "C", "face_id": "c1"}],
    }


def test_report_without_common_faces() -> None:
    report = compare_spaces([], [], {"old": ("l2", 0.6), "new": ("cosine", 0.6)}, [])
    assert report["faces_compared"] == 0 and "top1" not in report
