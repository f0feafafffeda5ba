"""The MiniFASNet model pack described as plain data, for /api/models, the CLI and the converter.

Upstream publishes PyTorch state dicts only; ``facerec models pull minifasnet`` downloads them
from the pinned commit, checks the SHA-256 below and converts each to ONNX (needs
``pip install 'facerec[convert]'``). The service itself only reads the ``onnx_name`` files from
``<models.model_dir>/minifasnet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UPSTREAM_REPO = "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing"
UPSTREAM_COMMIT = "b6d5f04ad78778917853b25c778acef6d5626d15"
_RAW = f"{UPSTREAM_REPO}/raw/{UPSTREAM_COMMIT}/resources/anti_spoof_models"


@dataclass(frozen=True)
class PackFile:
    """One network of the pack: where its weights come from and how its input is cropped."""

    variant: str  # architecture in facerec.inference.liveness.minifasnet_net.VARIANTS
    source_name: str  # upstream state-dict file name
    url: str
    sha256: str  # of the upstream .pth
    onnx_name: str  # what the converter writes and the service loads
    scale: float  # face box enlarged by this factor before cropping
    input_size: int  # square crop side in pixels


@dataclass(frozen=True)
class ModelPack:
    name: str
    family: str
    version: str
    license: str
    license_url: str
    homepage: str
    description: str
    files: tuple[PackFile, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (``dataclasses.asdict`` with the files as a list)."""
        return {
            "name": self.name,
            "family": self.family,
            "version": self.version,
            "license": self.license,
            "license_url": self.license_url,
            "homepage": self.homepage,
            "description": self.description,
            "files": [vars(f).copy() for f in self.files],
        }


# The directory under ``Settings.models.model_dir`` that holds the converted files.
PACK_DIRNAME = "minifasnet"

MINIFASNET_PACK = ModelPack(
    name="minifasnet",
    family="minifasnet",
    version=f"v2-2.7+v1se-4.0@{UPSTREAM_COMMIT[:7]}",
    license="Apache-2.0",
    license_url=f"{UPSTREAM_REPO}/blob/{UPSTREAM_COMMIT}/LICENSE",
    homepage=UPSTREAM_REPO,
    description=(
        "Passive (single-image) anti-spoofing: MiniFASNetV2 on the face box x2.7 and "
        "MiniFASNetV1SE on the face box x4.0, 80x80 BGR crops, softmax averaged; "
        "class 1 = live. Trained on print and screen-replay attacks."
    ),
    files=(
        PackFile(
            variant="MiniFASNetV2",
            source_name="2.7_80x80_MiniFASNetV2.pth",
            url=f"{_RAW}/2.7_80x80_MiniFASNetV2.pth",
            sha256="a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
            onnx_name="2.7_80x80_MiniFASNetV2.onnx",
            scale=2.7,
            input_size=80,
        ),
        PackFile(
            variant="MiniFASNetV1SE",
            source_name="4_0_0_80x80_MiniFASNetV1SE.pth",
            url=f"{_RAW}/4_0_0_80x80_MiniFASNetV1SE.pth",
            sha256="84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
            onnx_name="4_0_0_80x80_MiniFASNetV1SE.onnx",
            scale=4.0,
            input_size=80,
        ),
    ),
)
