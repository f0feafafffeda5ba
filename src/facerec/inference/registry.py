"""Every model of the catalogue as a model object, built from settings.

PyPI-shipped models are always present; model packs (downloaded or imported into
``models.model_dir``) are installed when their files are there; names reserved for packs we know
of but cannot ship answer "not installed" with the way to get them. Embedders get their
calibration (false-match rate against distance) from ``calibrations.json``.
"""

from __future__ import annotations

from facerec.config import Settings
from facerec.inference import catalogue
from facerec.inference.base import FaceEmbedder, Model
from facerec.inference.calibration import load_calibrations
from facerec.inference.catalogue import ModelEntry
from facerec.inference.detectors.hog import HogDetector
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.detectors.scrfd import ScrfdDetector
from facerec.inference.detectors.yolo import YoloV5FaceDetector, YoloV8FaceDetector
from facerec.inference.detectors.yunet import YuNetDetector
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
from facerec.inference.embedders.onnx_embedder import OnnxArcFaceEmbedder
from facerec.inference.liveness.minifasnet import MiniFASNetLiveness
from facerec.inference.unavailable import UnavailableModel


def build_model(entry: ModelEntry, settings: Settings) -> Model:
    model_dir = settings.models.model_dir
    match entry.implementation:
        case "retinaface":
            return RetinaFaceDetector(
                arena_keep_pixels=settings.memory.detector_arena_keep_pixels,
                run_pixels=settings.memory.detector_run_pixels,
            )
        case "hog":
            return HogDetector()
        case "scrfd":
            return ScrfdDetector(entry, model_dir)
        case "yunet":
            return YuNetDetector(entry, model_dir)
        case "yolov8_face":
            return YoloV8FaceDetector(entry, model_dir)
        case "yolov5_face":
            return YoloV5FaceDetector(entry, model_dir)
        case "dlib":
            return DlibResNetEmbedder()
        case "onnx_embedder":
            return OnnxArcFaceEmbedder(
                entry.embedder_spec(), model_dir, mirror_sum=settings.models.mirror_sum
            )
        case "minifasnet":
            return MiniFASNetLiveness(
                model_dir / entry.pack, threshold=settings.liveness.threshold, pack=entry
            )
        case None:
            return UnavailableModel(
                entry.model_info(),
                f"the {entry.name} model pack is planned but not supported by this version",
            )


def build_models(settings: Settings) -> dict[str, Model]:
    calibrations = load_calibrations()
    models: dict[str, Model] = {}
    for entry in catalogue.entries():
        model = build_model(entry, settings)
        if isinstance(model, FaceEmbedder):
            model.calibration = calibrations.get(entry.name)
        models[entry.name] = model
    return models
