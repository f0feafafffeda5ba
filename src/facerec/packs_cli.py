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
from pathlib import Path

from facerec.config import Settings
from facerec.errors import FaceRecError
from facerec.inference import catalogue
from facerec.inference.catalogue import ModelEntry
from facerec.inference.liveness.minifasnet_pack import convert_pack, pull_pack
from facerec.inference.pack_install import (
    chmod_pack,
    install_from,
    licence_note,
    remove_pack,
)
from facerec.inference.pack_pull import pull_file_pack
from facerec.inference.pack_validation import (
    verify_pack,
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
            chmod_pack(model_dir / entry.pack)
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
            chmod_pack(model_dir / entry.pack)
        else:
            if not source.is_file():
                print(f"facerec: {source} is not a file")
                return 1
            print("\n".join(install_from(entry, source, model_dir, verify=not args.no_verify)))
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
