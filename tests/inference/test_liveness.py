"""MiniFASNet liveness without weights: crop geometry, batching, averaging, the not-installed
state, state-dict key handling and the pack description. Fake sessions; the real weights are
exercised in test_liveness_convert.py."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.errors import ModelNotAvailableError
from facerec.inference.base import RuntimeOptions
from facerec.inference.catalogue import MINIFASNET_PACK, PACK_DIRNAME
from facerec.inference.liveness.convert import (
    ConverterMissingError,
    clean_state_dict,
    require_torch,
)
from facerec.inference.liveness.minifasnet import (
    DEFAULT_THRESHOLD,
    MiniFASNetLiveness,
    batch_crops,
    context_ratio,
    crop_face,
    expand_box,
)
from facerec.inference.liveness.minifasnet_pack import convert_pack
from facerec.inference.types import ModelTask
from facerec.values import BBox, Detection

V2, V1SE = "MiniFASNetV2", "MiniFASNetV1SE"


class FakeSession:
    """Returns logits [0, a, 0] per face, so the live probability is e^a / (2 + e^a)."""

    def __init__(self, live_logits: list[float]) -> None:
        self.live_logits = live_logits
        self.calls: list[dict[str, NDArray[np.float32]]] = []

    def run(self, names: Any, feeds: dict[str, NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        self.calls.append(feeds)
        batch = next(iter(feeds.values())).shape[0]
        logits = np.zeros((batch, 3), np.float32)
        logits[:, 1] = self.live_logits[:batch]
        return [logits]


def live_logit(p: float) -> float:
    """The class-1 logit giving softmax probability ``p`` when the other two logits are 0."""
    return math.log(2 * p / (1 - p))


def face(x1: float, y1: float, x2: float, y2: float) -> Detection:
    return Detection(BBox(x1, y1, x2, y2), 0.99)


# --- crop geometry (upstream CropImage._get_new_box) ---


def test_box_is_scaled_about_its_centre() -> None:
    # 100 px box at 400..499 → 270 px crop centred on 450
    assert expand_box(BBox(400, 400, 499, 499), 2.7, 1000, 1000) == (315, 315, 585, 585)


def test_box_is_shifted_back_inside_at_the_left_and_top() -> None:
    # centre 60 - 135 = -75: shifted right by 75, the size kept
    assert expand_box(BBox(10, 10, 109, 109), 2.7, 1000, 1000) == (0, 0, 270, 270)


def test_box_is_shifted_back_inside_at_the_right_and_bottom() -> None:
    # 50 px box near the corner of 640x480, x4.0 = 200 px, pushed left/up by 66 px
    assert expand_box(BBox(580, 420, 629, 469), 4.0, 640, 480) == (439, 279, 639, 479)


def test_scale_is_capped_when_the_crop_cannot_fit() -> None:
    # 100 px box in a 200x150 image: at most 149/100 = 1.49 times, whatever was asked
    box = BBox(50, 25, 149, 124)
    assert context_ratio(box, 200, 150) == pytest.approx(1.49)
    assert expand_box(box, 4.0, 200, 150) == (25, 0, 174, 149)


def test_crop_takes_exactly_the_expanded_region_resized_to_80() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)
    crop = crop_face(image, BBox(400, 400, 499, 499), 2.7, 80)
    expected = cv2.resize(image[315:586, 315:586], (80, 80), interpolation=cv2.INTER_LINEAR)
    assert crop.shape == (80, 80, 3)
    np.testing.assert_array_equal(crop, expected)


def test_batch_is_raw_bgr_values_channel_first() -> None:
    image = np.zeros((300, 300, 3), np.uint8)
    image[:] = (10, 20, 250)  # B, G, R
    batch = batch_crops(image, [face(100, 100, 149, 149), face(0, 0, 29, 29)], 2.7, 80)
    assert batch.shape == (2, 3, 80, 80)
    assert batch.dtype == np.float32
    assert batch.flags.c_contiguous
    # no /255, no mean: the network was trained on 0..255 BGR
    assert [float(batch[:, c].mean()) for c in range(3)] == [10.0, 20.0, 250.0]


def test_tiny_image_still_gives_a_crop() -> None:
    image = np.full((1, 1, 3), 7, np.uint8)
    assert crop_face(image, BBox(0, 0, 1, 1), 2.7, 80).shape == (80, 80, 3)


# --- scoring with fake sessions ---


def make_model(tmp_path: Path, v2: list[float], v1se: list[float]) -> MiniFASNetLiveness:
    sessions = {V2: FakeSession(v2), V1SE: FakeSession(v1se)}
    return MiniFASNetLiveness(tmp_path, session=sessions)


def test_faces_are_batched_once_per_network_and_averaged(tmp_path: Path) -> None:
    model = make_model(
        tmp_path,
        [live_logit(0.5), live_logit(0.75)],
        [live_logit(0.9), live_logit(1 / 3)],
    )
    image = np.zeros((480, 640, 3), np.uint8)
    faces = [face(100, 100, 199, 219), face(400, 50, 459, 119)]
    scores = model.score(image, faces)

    for variant in (V2, V1SE):
        calls = model.session[variant].calls
        assert len(calls) == 1  # both faces in one run
        batch = calls[0]["input"]
        assert batch.shape == (2, 3, 80, 80)
        assert batch.dtype == np.float32
    assert [s.per_model[V2] for s in scores] == pytest.approx([0.5, 0.75])
    assert [s.per_model[V1SE] for s in scores] == pytest.approx([0.9, 1 / 3])
    assert [s.live_score for s in scores] == pytest.approx([0.7, (0.75 + 1 / 3) / 2])


def test_each_network_gets_its_own_scale(tmp_path: Path) -> None:
    model = make_model(tmp_path, [0.0], [0.0])
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)
    box = face(450, 450, 549, 549)
    model.score(image, [box])
    v2_input = model.session[V2].calls[0]["input"][0]
    v1se_input = model.session[V1SE].calls[0]["input"][0]
    np.testing.assert_array_equal(v2_input, batch_crops(image, [box], 2.7, 80)[0])
    np.testing.assert_array_equal(v1se_input, batch_crops(image, [box], 4.0, 80)[0])


def test_no_faces_runs_nothing(tmp_path: Path) -> None:
    model = make_model(tmp_path, [], [])
    assert model.score(np.zeros((50, 50, 3), np.uint8), []) == []
    assert model.session[V2].calls == []


def test_threshold_decision(tmp_path: Path) -> None:
    model = make_model(tmp_path, [live_logit(0.9), live_logit(0.1)], [live_logit(0.9)] * 2)
    live, spoof = model.score(np.zeros((300, 300, 3), np.uint8), [face(100, 100, 150, 150)] * 2)
    assert model.threshold == DEFAULT_THRESHOLD
    assert model.is_live(live)
    assert not model.is_live(spoof, threshold=0.6)  # (0.1 + 0.9) / 2 = 0.5


def test_injected_sessions_must_cover_both_networks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MiniFASNetV1SE"):
        MiniFASNetLiveness(tmp_path, session={V2: FakeSession([])})


# --- not installed: answers "unavailable", never a score ---


def test_missing_files_mean_not_installed(tmp_path: Path) -> None:
    model = MiniFASNetLiveness(tmp_path / PACK_DIRNAME)
    assert model.info.task is ModelTask.LIVENESS
    assert model.name == "minifasnet"
    assert not model.is_installed()
    reason = model.not_installed_reason()
    assert "facerec models pull minifasnet" in reason
    assert "2.7_80x80_MiniFASNetV2.onnx" in reason
    assert model.weights_bytes() == 0
    with pytest.raises(ModelNotAvailableError) as caught:
        model.load(RuntimeOptions())
    assert caught.value.code == "model_not_installed"
    assert not model.loaded


def test_one_file_is_not_enough(tmp_path: Path) -> None:
    (tmp_path / MINIFASNET_PACK.files[0].onnx_name).write_bytes(b"x")
    model = MiniFASNetLiveness(tmp_path)
    assert not model.is_installed()
    assert MINIFASNET_PACK.files[1].onnx_name in model.not_installed_reason()
    (tmp_path / MINIFASNET_PACK.files[1].onnx_name).write_bytes(b"yy")
    assert model.is_installed()
    assert model.not_installed_reason() == ""
    assert model.weights_bytes() == 3


# --- converter without torch, key handling, pack data ---


def test_state_dict_keys_are_cleaned_explicitly() -> None:
    plain, ignored = clean_state_dict({"module.conv1.conv.weight": 1, "module.prob.weight": 2})
    assert plain == {"conv1.conv.weight": 1, "prob.weight": 2}
    assert ignored == ()
    # a MultiFTNet training checkpoint: classifier under model., FTGenerator dropped
    multi, ignored = clean_state_dict(
        {
            "module.model.conv1.conv.weight": 1,
            "module.FTGenerator.ft.0.weight": 2,
            "FTGenerator.ft.1.bias": 3,
        }
    )
    assert multi == {"conv1.conv.weight": 1}
    assert ignored == ("module.FTGenerator.ft.0.weight", "FTGenerator.ft.1.bias")


def test_missing_torch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ConverterMissingError, match=r"pip install 'facerec\[convert\]'"):
        require_torch()


def test_convert_pack_names_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape("2.7_80x80_MiniFASNetV2.pth")):
        convert_pack(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_service_side_never_imports_torch() -> None:
    code = (
        "import sys, facerec.inference.liveness, facerec.inference.liveness.convert, "
        "facerec.inference.liveness.minifasnet_pack; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pack_description_is_plain_pinned_data() -> None:
    data = json.loads(json.dumps(MINIFASNET_PACK.as_dict()))
    assert data["license"] == "Apache-2.0"
    files = {f["variant"]: f for f in data["files"]}
    assert files[V2]["scale"] == 2.7
    assert files[V1SE]["scale"] == 4.0
    for spec in MINIFASNET_PACK.files:
        assert spec.url.startswith("https://github.com/minivision-ai/Silent-Face-Anti-Spoofing/")
        assert "/raw/b6d5f04" in spec.url  # a commit, not a moving branch
        assert spec.url.endswith("/" + spec.source_name)
        assert len(spec.sha256) == 64
        int(spec.sha256, 16)
