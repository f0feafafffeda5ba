"""Every model the service knows, installed or not, built from settings.

PyPI-shipped models are always present; model packs (downloaded or imported into
``models.model_dir``) are installed when their files are there; names reserved for packs we know
of but cannot ship answer "not installed" with the way to get them.
"""

from __future__ import annotations

from facerec.config import Settings
from facerec.inference.base import Model
from facerec.inference.detectors.hog import HogDetector
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
from facerec.inference.embedders.onnx_embedder import MOBILEFACENET_SPEC, OnnxArcFaceEmbedder
from facerec.inference.liveness.minifasnet import MiniFASNetLiveness
from facerec.inference.types import ModelInfo, ModelTask
from facerec.inference.unavailable import UnavailableModel


def _reserved(name: str, task: ModelTask, family: str, how: str) -> UnavailableModel:
    info = ModelInfo(
        name=name,
        task=task,
        family=family,
        version="",
        source=f"pack:{name}",
        license="see the pack",
        description=f"{family} model pack (not shipped on PyPI)",
    )
    return UnavailableModel(info, how)


def build_models(settings: Settings) -> dict[str, Model]:
    model_dir = settings.models.model_dir
    models: dict[str, Model] = {
        "retinaface": RetinaFaceDetector(),
        "hog": HogDetector(),
        "dlib_resnet": DlibResNetEmbedder(),
        "mobilefacenet": OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, model_dir),
        "minifasnet": MiniFASNetLiveness(
            model_dir / "minifasnet", threshold=settings.liveness.threshold
        ),
    }
    pack_hint = "the {name} model pack is planned but not supported by this version"
    for name, family in (("scrfd", "scrfd"), ("yunet", "yunet"), ("yolov8-face", "yolo")):
        models[name] = _reserved(name, ModelTask.DETECTION, family, pack_hint.format(name=name))
    for name in ("arcface", "adaface", "facenet"):
        models[name] = _reserved(name, ModelTask.EMBEDDING, name, pack_hint.format(name=name))
    return models
