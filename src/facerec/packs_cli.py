"""Model-pack and database commands: ``facerec models pull|import|remove|verify|convert`` and
``facerec db upgrade``.

A pack is weights that no PyPI package ships; what each pack accepts comes from its catalogue
entry (:mod:`facerec.inference.catalogue`). With internet, ``pull`` downloads the entry's upstream
file (extracting it from a zip archive where upstream publishes one; a progress bar on stderr)
and checks its pinned SHA-256; where upstream publishes no checksum and we hold no copy, the first
pull records the file's SHA-256 (trust on first use) and later pulls must match it. Air-gapped,
``import`` takes a local file, which must be one of the entry's known files (``--no-verify`` for
a file you trust); a pack whose upstream files cannot be pinned at all (AdaFace) takes any file
that passes the graph check. Every ONNX graph is checked against the entry's family
(:func:`~facerec.inference.pack_validation.check_graph`) before it is installed, ``--no-verify``
or not. Packs with a conversion step (MiniFASNet's and FaceNet's PyTorch state dicts) are
converted to ONNX on both paths (needs ``pip install 'facerec[convert]'``); the service itself
never imports torch.

Files are staged in a temporary folder inside the pack folder, checked there and renamed into
place, so a refused file leaves the pack folder as it was (and creates none). Installed files are
0644, whichever way they came. An installed pack folder holds the file the service loads and
``manifest.json`` (the entry, the file's SHA-256 and how far it was trusted), which ``verify``
re-hashes against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from facerec.config import Settings
from facerec.errors import FaceRecError
from facerec.inference import catalogue
from facerec.inference.catalogue import ModelEntry, PackFile
from facerec.inference.downloads import Downloader, download_url, sha256_file
from facerec.inference.liveness.convert import ChecksumMismatchError, convert_pack, pull_pack
from facerec.inference.pack_validation import (
    MANIFEST_NAME,
    check_graph,
    read_manifest,
    verify_pack,
)

__all__ = [
    "MANIFEST_NAME",
    "install_pack_file",
    "pull_file_pack",
    "read_manifest",
    "remove_pack",
]

MAX_MEMBER_BYTES = 1024 * 1024 * 1024
FILE_MODE = 0o644
Trust = Literal["pinned", "trust-on-first-use", "unverified"]
TOFU_NOTE = (
    "upstream publishes no SHA-256 for this file, so it was recorded at this first pull "
    "(trust on first use); later pulls must match it"
)


def pack_names() -> list[str]:
    return [entry.name for entry in catalogue.packs()]


def pack_choices() -> list[str]:
    """Pack names and the aliases that stand for one (``arcface``)."""
    packs = set(pack_names())
    aliases = {a for a in catalogue.aliases() if any(t.name in packs for t in _targets(a))}
    return [*pack_names(), *sorted(aliases)]


def _targets(alias: str) -> list[ModelEntry]:
    return catalogue.alias_targets(alias)


def converted_pack_names() -> list[str]:
    return [entry.name for entry in catalogue.packs() if entry.conversion is not None]


def pack_entry(name: str) -> ModelEntry:
    entry = catalogue.find(name)
    if entry is None or not entry.installable:
        raise SystemExit(f"facerec: unknown or unsupported pack {name!r}; known: {pack_names()}")
    return entry


# --- staging: nothing half-installed ---


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


def _install(
    entry: ModelEntry, source: Path, model_dir: Path, *, verify: bool, trust: Trust | None = None,
    origin: str = "",
) -> list[str]:  # fmt: skip
    if entry.conversion is not None and entry.conversion.converter == "facenet":
        return install_converted_facenet(
            entry, source, model_dir, verify=verify, trust=trust, origin=origin
        )
    target = install_pack_file(entry, source, model_dir, verify=verify, trust=trust, origin=origin)
    return [f"installed {target}"]


def _chmod_pack(pack_dir: Path) -> None:
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


# --- pull ---


def _download_file(entry: ModelEntry) -> PackFile:
    for file in entry.files:
        if file.url:
            return file
    raise FaceRecError(
        f"the {entry.name!r} pack has no pinned download: get the weights yourself"
        + (f" ({entry.homepage})" if entry.homepage else "")
        + f" and run `facerec models import {entry.name} FILE`"
    )


@contextmanager
def _fetched(file: PackFile, download: Downloader) -> Iterator[Path]:
    """The upstream file in a temporary folder (extracted when the URL is a zip archive)."""
    with tempfile.TemporaryDirectory(prefix="facerec-pull-") as work:
        fetched = Path(work) / (Path(file.url).name if file.member else file.name)
        download(file.url, fetched)
        if not file.member:
            yield fetched
            return
        target = Path(work) / file.name
        with zipfile.ZipFile(fetched) as archive:
            members = [i for i in archive.infolist() if Path(i.filename).name == file.member]
            if not members:
                raise FaceRecError(f"{file.url} holds no {file.member}")
            if members[0].file_size > MAX_MEMBER_BYTES:
                raise FaceRecError(f"{file.member} in {file.url} is implausibly large")
            with archive.open(members[0]) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
        yield target


def pull_file_pack(
    entry: ModelEntry, model_dir: Path, *, download: Downloader | None = None
) -> list[str]:
    """Download, check (pinned SHA-256, or the one recorded at the first pull) and install."""
    file = _download_file(entry)
    lines = [f"downloading {file.url}" + (f" ({file.member})" if file.member else "")]
    with _fetched(file, download or download_url) as fetched:
        sha = sha256_file(fetched)
        trust: Trust = "pinned"
        if file.pinned:
            if sha != file.sha256:
                raise ChecksumMismatchError(
                    f"{file.name}: SHA-256 {sha} is not the published {file.sha256}",
                    model=entry.name,
                )
        else:
            installed = read_manifest(model_dir / entry.pack).get("installed", {})
            earlier = None
            if installed.get("origin") == file.url:
                earlier = installed.get("source_sha256") or installed.get("sha256")
            if earlier is not None and earlier != sha:
                raise ChecksumMismatchError(
                    f"{file.name}: SHA-256 {sha} differs from {earlier}, recorded at the first "
                    f"pull: upstream changed the file. Remove {model_dir / entry.pack} to trust "
                    "the new one",
                    model=entry.name,
                )
            trust = "trust-on-first-use"
            note = TOFU_NOTE if earlier is None else "matches the one recorded at the first pull"
            lines.append(f"{file.name}: SHA-256 {sha}: {note}")
        lines += _install(entry, fetched, model_dir, verify=True, trust=trust, origin=file.url)
    return lines


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


# --- commands ---


def _model_dir() -> Path:
    model_dir: Path = Settings().models.model_dir
    return model_dir


def _fail(exc: Exception) -> int:
    print(f"facerec: {getattr(exc, 'message', exc)}")
    return 1


def cmd_pull(args: argparse.Namespace) -> int:
    model_dir = _model_dir()
    entry = pack_entry(args.name)
    try:
        if entry.conversion is not None and entry.conversion.converter == "minifasnet":
            for report in pull_pack(model_dir / entry.pack, pack=entry):
                print(report.summary())
            _chmod_pack(model_dir / entry.pack)
        else:
            print("\n".join(pull_file_pack(entry, model_dir)))
        print(licence_note(entry))
        return 0
    except FaceRecError as exc:
        return _fail(exc)


def cmd_import(args: argparse.Namespace) -> int:
    model_dir = _model_dir()
    entry = pack_entry(args.name)
    source = Path(args.path)
    try:
        if entry.conversion is not None and entry.conversion.converter == "minifasnet":
            folder = source if source.is_dir() else source.parent
            reports = convert_pack(
                folder, model_dir / entry.pack, pack=entry, verify_sha256=not args.no_verify
            )
            for report in reports:
                print(report.summary())
            _chmod_pack(model_dir / entry.pack)
        else:
            if not source.is_file():
                print(f"facerec: {source} is not a file")
                return 1
            print("\n".join(_install(entry, source, model_dir, verify=not args.no_verify)))
        print(licence_note(entry))
        return 0
    except (FaceRecError, FileNotFoundError) as exc:
        return _fail(exc)


def cmd_remove(args: argparse.Namespace) -> int:
    try:
        print(remove_pack(pack_entry(args.name), _model_dir()))
    except FaceRecError as exc:
        return _fail(exc)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    model_dir = _model_dir()
    checks = [c for e in catalogue.packs() if (c := verify_pack(e, model_dir / e.pack))]
    if not checks:
        print(f"no model packs installed in {model_dir}")
        return 0
    for check in checks:
        if check.problem:
            print(f"{check.pack:<16} PROBLEM   {check.problem}")
        for file in check.files:
            detail = f"  {file.detail}" if file.state != "ok" and file.detail else ""
            print(f"{check.pack:<16} {file.state:<9} {file.file}{detail}")
    bad = [c.pack for c in checks if not c.ok]
    if bad:
        print(f"facerec: {', '.join(bad)}: re-import or pull them (`facerec models pull NAME`)")
        return 1
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    entry = pack_entry(args.name)
    if entry.conversion is None or entry.conversion.converter != "minifasnet":
        print("facerec: only minifasnet converts from a folder; use `facerec models import`")
        return 1
    dest = Path(args.dest) if args.dest else _model_dir() / entry.pack
    try:
        for report in convert_pack(
            Path(args.src), dest, pack=entry, verify_sha256=not args.no_verify
        ):
            print(report.summary())
    except (FaceRecError, FileNotFoundError) as exc:
        return _fail(exc)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from facerec.storage.migrate import upgrade_database

    settings = Settings()
    asyncio.run(upgrade_database(settings))
    print(f"database at {settings.db.url.split('@')[-1]} is at the latest revision")
    return 0


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    models: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    choices = pack_choices()
    pull = models.add_parser("pull", help="download a model pack (pinned URL + SHA-256)")
    pull.add_argument("name", choices=choices)
    pull.set_defaults(func=cmd_pull)

    imp = models.add_parser("import", help="install a model pack from a local file (air-gapped)")
    imp.add_argument("name", choices=choices)
    imp.add_argument(
        "path", help="the file (a .pt state dict for facenet; for minifasnet, the .pth folder)"
    )
    imp.add_argument(
        "--no-verify", action="store_true", help="skip the SHA-256 check (never the graph check)"
    )
    imp.set_defaults(func=cmd_import)

    remove = models.add_parser("remove", help="delete an installed model pack")
    remove.add_argument("name", choices=choices)
    remove.set_defaults(func=cmd_remove)

    verify = models.add_parser(
        "verify", help="re-hash every installed pack file (exit 1 if one is modified or missing)"
    )
    verify.set_defaults(func=cmd_verify)

    conv = models.add_parser("convert", help="convert MiniFASNet .pth files to ONNX (needs torch)")
    conv.add_argument("name", choices=["minifasnet"])
    conv.add_argument("--src", required=True, help="folder with the upstream .pth files")
    conv.add_argument("--dest", help="output folder (default: <model_dir>/<pack>)")
    conv.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    conv.set_defaults(func=cmd_convert)

    db = top.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply the migrations")
    upgrade.set_defaults(func=cmd_db_upgrade)
