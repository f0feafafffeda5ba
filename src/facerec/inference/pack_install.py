"""Installing model packs: staging, checking (SHA-256, ONNX graph), converting and publishing
files into ``<model_dir>/<pack>/``, removing them; pulling them from upstream is
:mod:`.pack_pull`.

Files are staged in a temporary folder inside the pack folder, checked there and renamed into
place, so a refused file leaves the pack folder as it was (and creates none). Installed files are
0644, whichever way they came. An installed pack folder holds the file the service loads and
``manifest.json`` (the entry, the file's SHA-256 and how far it was trusted), which ``verify``
re-hashes against. The commands are in :mod:`facerec.packs_cli`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from facerec.errors import FaceRecError
from facerec.inference import catalogue
from facerec.inference.catalogue import ModelEntry
from facerec.inference.downloads import sha256_file
from facerec.inference.liveness.minifasnet_pack import ChecksumMismatchError
from facerec.inference.pack_validation import MANIFEST_NAME, check_graph

FILE_MODE = 0o644
Trust = Literal["pinned", "trust-on-first-use", "unverified"]


@contextmanager
def _staging(pack_dir: Path) -> Iterator[Path]:
    """A temporary folder inside ``pack_dir``; folders created for it that stay empty (a refused
    file) are removed again, so a refusal leaves the model directory as it was."""
    created = [p for p in (pack_dir.parent, pack_dir) if not p.exists()]
    pack_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=pack_dir, prefix=".install-") as work:
            yield Path(work)
    finally:
        for folder in reversed(created):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _publish(staged: Path, dest: Path) -> None:
    os.chmod(staged, FILE_MODE)
    os.replace(staged, dest)


def _write_manifest(work: Path, pack_dir: Path, manifest: dict[str, Any]) -> None:
    staged = work / MANIFEST_NAME
    staged.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _publish(staged, pack_dir / MANIFEST_NAME)


def _pinned_elsewhere(entry: ModelEntry, sha: str) -> ModelEntry | None:
    return next(
        (e for e in catalogue.packs() if e.name != entry.name and e.known_file(sha) is not None),
        None,
    )


def _trust(entry: ModelEntry, source: Path, sha: str, verify: bool, trust: Trust | None) -> Trust:
    """How far ``sha`` is trusted as a file of ``entry``; ChecksumMismatchError if not at all."""
    if entry.known_file(sha) is not None:
        return "pinned"
    if trust is not None:
        return trust
    other = _pinned_elsewhere(entry, sha)
    unpinnable = bool(entry.files) and not any(f.pinnable for f in entry.files)
    if verify and (other is not None or not unpinnable):
        hint = (
            f"; it is the {other.name!r} pack's file: `facerec models import {other.name} FILE`"
            if other is not None
            else ""
        )
        raise ChecksumMismatchError(
            f"{source.name}: SHA-256 {sha} is not a known file of the {entry.name!r} pack "
            f"({_known_files(entry)}){hint}; pass --no-verify to import a file you trust anyway",
            model=entry.name,
            sha256=sha,
        )
    return "unverified"


def install_pack_file(
    entry: ModelEntry,
    source: Path,
    model_dir: Path,
    *,
    verify: bool = True,
    trust: Trust | None = None,
    origin: str = "",
) -> Path:
    """Install ``source`` as ``model_dir/<pack>/<install_name>`` with its manifest.

    ``verify``: the file must be one of the entry's pinned files (else ChecksumMismatchError);
    packs whose files cannot be pinned take any file. ``trust`` overrides how the manifest records
    it (a pull's TOFU file). The graph is checked against the entry's family either way
    (GraphMismatchError). Nothing is written unless every check passes.
    """
    pack_dir = model_dir / entry.pack
    with _staging(pack_dir) as work:
        staged = work / entry.install_name
        shutil.copyfile(source, staged)
        sha = sha256_file(staged)  # the bytes that will be installed, not the source's
        recorded = _trust(entry, source, sha, verify, trust)
        check_graph(staged, entry)
        known = entry.known_file(sha)
        installed = {
            "file": entry.install_name,
            "sha256": sha,
            "source_sha256": sha,
            "known_file": known.name if known is not None else None,
            "version": entry.file_version(sha) if _versioned_by_file(entry) else entry.version,
            "trust": recorded,
            "origin": origin or str(source),
            "graph_checked": entry.graph_signature() is not None,
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _publish(staged, pack_dir / entry.install_name)
        _write_manifest(work, pack_dir, {"pack": entry.as_dict(), "installed": installed})
    return pack_dir / entry.install_name


def install_converted_facenet(
    entry: ModelEntry,
    source: Path,
    model_dir: Path,
    *,
    verify: bool = True,
    trust: Trust | None = None,
    origin: str = "",
) -> list[str]:
    """FaceNet: a PyTorch state dict converted to ONNX (checked against PyTorch and the family's
    graph) and installed; an ONNX file is taken as is only with ``verify=False``."""
    if source.suffix.lower() == ".onnx":
        if verify:
            raise ChecksumMismatchError(
                f"{source.name}: the {entry.name!r} pack is made from upstream's PyTorch state "
                f"dict ({entry.files[0].name}); pass --no-verify to install an ONNX export you "
                "trust instead",
                model=entry.name,
            )
        return [f"installed {install_pack_file(entry, source, model_dir, verify=False)}"]
    from facerec.inference.embedders.convert_facenet import convert_facenet, require_torch

    require_torch()
    (spec,) = entry.converted_files
    pack_dir = model_dir / entry.pack
    with _staging(pack_dir) as work:
        staged_source = work / spec.source_name
        shutil.copyfile(source, staged_source)
        sha = sha256_file(staged_source)
        recorded = _trust(entry, source, sha, verify=False, trust=trust)
        report = convert_facenet(staged_source, work / spec.onnx_name)
        check_graph(work / spec.onnx_name, entry)
        target = pack_dir / spec.onnx_name
        installed = {
            "file": spec.onnx_name,
            "sha256": report.onnx_sha256,
            "source_file": spec.source_name,
            "source_sha256": sha,
            "known_file": spec.name if entry.known_file(sha) is not None else None,
            "version": entry.version,
            "trust": recorded,
            "origin": origin or str(source),
            "graph_checked": True,
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        converted = asdict(replace(report, onnx_path=str(target), source=str(source)))
        _publish(work / spec.onnx_name, target)
        manifest = {"pack": entry.as_dict(), "installed": installed, "converted": [converted]}
        _write_manifest(work, pack_dir, manifest)
    note = "" if recorded == "pinned" else " (no published SHA-256: the strict load is the check)"
    return [report.summary(), f"installed {target}{note}"]


def install_from(
    entry: ModelEntry, source: Path, model_dir: Path, *, verify: bool, trust: Trust | None = None,
    origin: str = "",
) -> list[str]:  # fmt: skip
    if entry.conversion is not None and entry.conversion.converter == "facenet":
        return install_converted_facenet(
            entry, source, model_dir, verify=verify, trust=trust, origin=origin
        )
    target = install_pack_file(entry, source, model_dir, verify=verify, trust=trust, origin=origin)
    return [f"installed {target}"]


def chmod_pack(pack_dir: Path) -> None:
    """MiniFASNet's converter writes with the process umask: same modes as every other pack."""
    for path in pack_dir.iterdir():
        if path.is_file():
            os.chmod(path, FILE_MODE)


def _versioned_by_file(entry: ModelEntry) -> bool:
    return entry.embedder is not None and entry.embedder.version_from_file


def _known_files(entry: ModelEntry) -> str:
    pinned = [f"{f.name} {f.sha256[:12]}…" for f in entry.files if f.pinned]
    unpinned = [f.name for f in entry.files if not f.pinned and f.url]
    text = "known: " + (", ".join(pinned) or "none")
    if unpinned:
        text += f"; {', '.join(unpinned)} has no published SHA-256 (pull records it)"
    return text


def remove_pack(entry: ModelEntry, model_dir: Path) -> str:
    pack_dir = model_dir / entry.pack
    if not entry.pack or pack_dir.resolve().parent != model_dir.resolve():
        raise FaceRecError(f"{entry.name!r} is not a model pack")
    if not pack_dir.exists():
        return f"{entry.name}: not installed in {model_dir}"
    shutil.rmtree(pack_dir)
    return f"removed {pack_dir}"


def licence_note(entry: ModelEntry) -> str:
    note = f"licence: {entry.licence.name}"
    if entry.licence.url:
        note += f" <{entry.licence.url}>"
    if not entry.licence.commercial_use:
        note += (
            "\nNOT for commercial use: `auto` will not pick it unless "
            "FACEREC_MODELS__ALLOW_NON_COMMERCIAL=true; model_name="
            f"{entry.name!r} selects it explicitly"
        )
    return note
