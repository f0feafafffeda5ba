"""Embedding model packs: weights that no PyPI package ships, described as plain data.

A pack's files live in ``Settings.models.model_dir / <pack name> / <file name>``; the model-pack
command downloads them from ``url`` (or imports a local file) and checks ``sha256``. Packs with
``supported=False`` are names we reserve: the service knows them and says they are not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from facerec.inference.types import ModelTask


@dataclass(frozen=True)
class PackFile:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class ModelPack:
    name: str
    task: ModelTask
    family: str
    license: str
    description: str
    files: tuple[PackFile, ...] = ()
    supported: bool = True


MOBILEFACENET = ModelPack(
    name="mobilefacenet",
    task=ModelTask.EMBEDDING,
    family="mobilefacenet",
    license="Apache-2.0",
    description="MobileFaceNet (foamliu), 128-D ArcFace-style embedding, cosine distance; "
    "112x112 chips on the ArcFace 5-point template. ~4 MB, fast on CPU.",
    files=(
        PackFile(
            name="mobilefacenet_foamliu_opset18.onnx",
            url="https://github.com/foamliu/MobileFaceNet/raw/master/weights/MobileFaceNet.onnx",
            sha256="b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507",
        ),
    ),
)


def _reserved(name: str, description: str) -> ModelPack:
    return ModelPack(
        name=name,
        task=ModelTask.EMBEDDING,
        family=name,
        license="see the pack",
        description=description,
        supported=False,
    )


# Known names for later packs: listed by the service, never installed by this version.
RESERVED_EMBEDDER_PACKS: tuple[ModelPack, ...] = (
    _reserved("arcface", "InsightFace ArcFace ResNet embeddings (planned pack)"),
    _reserved("adaface", "AdaFace embeddings (planned pack)"),
    _reserved("facenet", "FaceNet (Inception-ResNet) embeddings (planned pack)"),
)

EMBEDDER_PACKS: dict[str, ModelPack] = {
    pack.name: pack for pack in (MOBILEFACENET, *RESERVED_EMBEDDER_PACKS)
}
