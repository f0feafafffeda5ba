"""Catalogue entries for the liveness (anti-spoofing) models."""

from __future__ import annotations

from facerec.inference.catalogue.types import Conversion, ConvertedFile, Licence, ModelEntry
from facerec.inference.types import ModelTask

MINIFASNET_REPO = "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing"
MINIFASNET_COMMIT = "b6d5f04ad78778917853b25c778acef6d5626d15"
_MINIFASNET_RAW = f"{MINIFASNET_REPO}/raw/{MINIFASNET_COMMIT}/resources/anti_spoof_models"

MINIFASNET = ModelEntry(
    name="minifasnet",
    task=ModelTask.LIVENESS,
    family="minifasnet",
    version=f"v2-2.7+v1se-4.0@{MINIFASNET_COMMIT[:7]}",
    description=(
        "Passive (single-image) anti-spoofing: MiniFASNetV2 on the face box x2.7 and "
        "MiniFASNetV1SE on the face box x4.0, 80x80 BGR crops, softmax averaged; "
        "class 1 = live. Trained on print and screen-replay attacks."
    ),
    source="pack:minifasnet",
    licence=Licence(
        "Apache-2.0", f"{MINIFASNET_REPO}/blob/{MINIFASNET_COMMIT}/LICENSE", commercial_use=True
    ),
    implementation="minifasnet",
    files=(
        ConvertedFile(
            name="2.7_80x80_MiniFASNetV2.pth",
            url=f"{_MINIFASNET_RAW}/2.7_80x80_MiniFASNetV2.pth",
            sha256="a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
            variant="MiniFASNetV2",
            onnx_name="2.7_80x80_MiniFASNetV2.onnx",
            scale=2.7,
            input_size=80,
        ),
        ConvertedFile(
            name="4_0_0_80x80_MiniFASNetV1SE.pth",
            url=f"{_MINIFASNET_RAW}/4_0_0_80x80_MiniFASNetV1SE.pth",
            sha256="84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
            variant="MiniFASNetV1SE",
            onnx_name="4_0_0_80x80_MiniFASNetV1SE.onnx",
            scale=4.0,
            input_size=80,
        ),
    ),
    conversion=Conversion(
        description="PyTorch state dicts → ONNX by facerec.inference.liveness.convert, "
        "checked against PyTorch before they are installed",
        requires="pip install 'facerec[convert]' (torch==2.13.0)",
    ),
    auto_rank=10,
    homepage=MINIFASNET_REPO,
)
