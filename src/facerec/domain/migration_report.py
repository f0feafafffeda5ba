"""How two embedding spaces compare on one collection's own faces (a migration's report).

For the faces held in both spaces (the same kept chip): the same-person and different-person
distance distributions in each space, with each model's 1:1 threshold, and the top-1
identification of every face against all the others (leave one out) in each space: which
answers would change with the cut-over.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.values import Face

# The report compares at most this many faces (pairwise distances grow with the square).
MAX_FACES = 3000
MAX_LISTED = 200


def distances(vectors: NDArray[np.float32], metric: str) -> NDArray[np.float64]:
    x = np.asarray(vectors, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms == 0, 1.0, norms)
        return np.asarray(1.0 - x @ x.T)
    squared = (x**2).sum(axis=1)
    d2 = np.maximum(squared[:, None] + squared[None, :] - 2.0 * x @ x.T, 0.0)
    return np.asarray(np.sqrt(d2))


def _summary(values: NDArray[np.float64]) -> dict[str, Any]:
    if values.size == 0:
        return {"pairs": 0}
    return {
        "pairs": int(values.size),
        "mean": round(float(values.mean()), 4),
        "median": round(float(np.median(values)), 4),
        "p05": round(float(np.percentile(values, 5)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
    }


def _space_stats(
    matrix: NDArray[np.float64], same: NDArray[np.bool_], threshold: float
) -> dict[str, Any]:
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    genuine = matrix[upper & same]
    impostor = matrix[upper & ~same]
    stats: dict[str, Any] = {
        "threshold": threshold,
        "same_person": _summary(genuine),
        "different_person": _summary(impostor),
        "same_above_threshold": int((genuine > threshold).sum()),
        "different_within_threshold": int((impostor <= threshold).sum()),
    }
    if genuine.size > 1 and impostor.size > 1:
        spread = np.sqrt((genuine.var() + impostor.var()) / 2.0) or 1.0
        # d′: how far apart the two distributions are, in pooled standard deviations.
        stats["separation_d_prime"] = round(float((impostor.mean() - genuine.mean()) / spread), 3)
    return stats


def _top1(matrix: NDArray[np.float64], owners: list[str]) -> list[str | None]:
    if len(owners) < 2:
        return [None] * len(owners)
    masked = matrix.copy()
    np.fill_diagonal(masked, np.inf)
    return [owners[int(j)] for j in masked.argmin(axis=1)]


def compare_spaces(
    old: list[tuple[Face, str]],
    new: list[tuple[Face, str]],
    thresholds: dict[str, tuple[str, float]],
    chipless: list[tuple[str, str]],
) -> dict[str, Any]:
    """``old``/``new``: (face, chip origin id) of each space; ``thresholds``: "old"/"new" →
    (metric, 1:1 distance threshold); ``chipless``: (person id, face id) without a kept chip."""
    by_origin_old = {origin: face for face, origin in old if face.embedding is not None}
    by_origin_new = {origin: face for face, origin in new if face.embedding is not None}
    origins = sorted(set(by_origin_old) & set(by_origin_new))[:MAX_FACES]
    owners = [by_origin_new[o].person_id for o in origins]
    report: dict[str, Any] = {
        "faces_compared": len(origins),
        "persons": len(set(owners)),
        "truncated": len(set(by_origin_old) & set(by_origin_new)) > MAX_FACES,
        "needs_new_photo": {
            "count": len(chipless),
            "faces": [{"person_id": p, "face_id": f} for p, f in chipless[:MAX_LISTED]],
        },
    }
    if not origins:
        return report
    owner_array = np.asarray(owners)
    same = owner_array[:, None] == owner_array[None, :]
    answers: dict[str, list[str | None]] = {}
    for key, faces_by_origin in (("old", by_origin_old), ("new", by_origin_new)):
        metric, threshold = thresholds[key]
        vectors = np.stack([np.asarray(faces_by_origin[o].embedding) for o in origins])
        matrix = distances(vectors.astype(np.float32), metric)
        report[key] = _space_stats(matrix, same, threshold)
        answers[key] = _top1(matrix, owners)
    has_other = same.sum(axis=1) > 1  # faces whose person has another face to be found by
    changed = [
        {
            "face_id": by_origin_new[o].id,
            "person_id": owners[i],
            "old_top1": answers["old"][i],
            "new_top1": answers["new"][i],
        }
        for i, o in enumerate(origins)
        if answers["old"][i] != answers["new"][i]
    ]
    report["top1"] = {
        "evaluated": len(origins),
        "with_another_face_of_the_person": int(has_other.sum()),
        "correct_old": int(
            sum(1 for i in range(len(origins)) if has_other[i] and answers["old"][i] == owners[i])
        ),
        "correct_new": int(
            sum(1 for i in range(len(origins)) if has_other[i] and answers["new"][i] == owners[i])
        ),
        "changed_count": len(changed),
        "changed": changed[:MAX_LISTED],
    }
    return report
