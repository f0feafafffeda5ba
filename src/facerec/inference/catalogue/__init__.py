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

from facerec.inference.catalogue.detectors import (
    HOG,
    RETINAFACE,
    SCRFD_2_5G,
    SCRFD_500M,
    YOLOV5N_05,
    YOLOV8_LITE_T,
    YUNET,
)
from facerec.inference.catalogue.embedders import (
    ADAFACE,
    ADAFACE_HOMEPAGE,
    BUFFALO_SC_URL,
    DLIB_RESNET,
    FACENET,
    FACENET_REPO,
    MOBILEFACENET,
    W600K_MBF,
    W600K_MBF_INT8,
)
from facerec.inference.catalogue.liveness import (
    MINIFASNET,
    MINIFASNET_COMMIT,
    MINIFASNET_REPO,
)
from facerec.inference.catalogue.types import (
    Conversion,
    ConvertedFile,
    EmbedderSpec,
    GraphSignature,
    Licence,
    ModelEntry,
    PackFile,
    TensorSignature,
    file_version,
    known_file,
)
from facerec.inference.types import ModelTask

__all__ = [
    "ADAFACE",
    "ADAFACE_HOMEPAGE",
    "BUFFALO_SC_URL",
    "DLIB_RESNET",
    "ENTRIES",
    "FACENET",
    "FACENET_REPO",
    "HOG",
    "MINIFASNET",
    "MINIFASNET_COMMIT",
    "MINIFASNET_PACK",
    "MINIFASNET_REPO",
    "MOBILEFACENET",
    "PACK_DIRNAME",
    "RETINAFACE",
    "SCRFD_2_5G",
    "SCRFD_500M",
    "W600K_MBF",
    "W600K_MBF_INT8",
    "YOLOV5N_05",
    "YOLOV8_LITE_T",
    "YUNET",
    "Conversion",
    "ConvertedFile",
    "EmbedderSpec",
    "GraphSignature",
    "Licence",
    "ModelEntry",
    "PackFile",
    "TensorSignature",
    "alias_targets",
    "aliases",
    "auto_order",
    "entries",
    "file_version",
    "find",
    "get",
    "known_file",
    "packs",
]

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
