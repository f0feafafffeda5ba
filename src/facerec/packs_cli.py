"""Model-pack and database commands: ``facerec models pull|import|convert`` and
``facerec db upgrade``.

A pack is weights that no PyPI package ships; what each pack accepts comes from its catalogue
entry (:mod:`facerec.inference.catalogue`). With internet, ``pull`` downloads the entry's upstream
file (extracting it from a zip archive where upstream publishes one) and checks its pinned
SHA-256; where upstream publishes no checksum and we hold no copy, the first pull records the
file's SHA-256 (trust on first use) and later pulls must match it. Air-gapped, ``import`` takes a
local file, which must be one of the entry's known files (``--no-verify`` for a file you trust).
Packs with a conversion step (MiniFASNet's PyTorch state dicts) are converted to ONNX on both
paths (needs ``pip install 'facerec[convert]'``); the service itself never imports torch.

An installed pack folder holds the file the service loads and ``manifest.json`` (the entry, the
file's SHA-256 and how far it was trusted); a refused file leaves the folder as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from facerec.config import Settings
from facerec.errors import FaceRecError
from facerec.inference import catalogue
from facerec.inference.catalogue import ModelEntry, PackFile
from facerec.inference.downloads import Downloader, download_url, sha256_file
from facerec.inference.liveness.convert import ChecksumMismatchError, convert_pack, pull_pack

MANIFEST_NAME = "manifest.json"
MAX_MEMBER_BYTES = 256 * 1024 * 1024
Trust = Literal["pinned", "trust-on-first-use", "unverified"]
TOFU_NOTE = (
    "upstream publishes no SHA-256 for this file, so it was recorded at this first pull "
    "(trust on first use); later pulls must match it"
)


def pack_names() -> list[str]:
    return [entry.name for entry in catalogue.packs()]


def converted_pack_names() -> list[str]:
    return [entry.name for entry in catalogue.packs() if entry.conversion is not None]


def pack_entry(name: str) -> ModelEntry:
    entry = catalogue.find(name)
    if entry is None or not entry.installable:
        raise SystemExit(f"facerec: unknown or unsupported pack {name!r}; known: {pack_names()}")
    return entry


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    path = pack_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write_atomically(dest: Path, write: Callable[[IO[bytes]], object]) -> None:
    tmp = tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, prefix=".import-")  # noqa: SIM115
    try:
        with tmp:
            write(tmp)
        os.replace(tmp.name, dest)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


def install_pack_file(
    entry: ModelEntry,
    source: Path,
    model_dir: Path,
    *,
    verify: bool = True,
    trust: Trust | None = None,
    origin: str = "",
) -> Path:
    """Copy ``source`` into ``model_dir/<pack>/<install_name>`` with its manifest.

    ``verify``: the file must be one of the entry's pinned files (else ChecksumMismatchError and
    nothing is written). ``trust`` overrides how the manifest records it (a pull's TOFU file).
    The copy is atomic: the service never sees a half file.
    """
    sha = sha256_file(source)
    known = entry.known_file(sha)
    if known is None and verify and trust != "trust-on-first-use":
        raise ChecksumMismatchError(
            f"{source.name}: SHA-256 {sha} is not a known file of the {entry.name!r} pack "
            f"({_known_files(entry)}); pass --no-verify to import a file you trust anyway",
            model=entry.name,
            sha256=sha,
        )
    recorded: Trust = "pinned" if known is not None else (trust or "unverified")
    dest_dir = model_dir / entry.pack
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / entry.install_name
    with source.open("rb") as src:
        _write_atomically(target, lambda out: shutil.copyfileobj(src, out))
    manifest = {
        "pack": entry.as_dict(),
        "installed": {
            "file": entry.install_name,
            "sha256": sha,
            "known_file": known.name if known is not None else None,
            "version": entry.file_version(sha) if _versioned_by_file(entry) else entry.version,
            "trust": recorded,
            "origin": origin or str(source),
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    text = json.dumps(manifest, indent=2)
    _write_atomically(dest_dir / MANIFEST_NAME, lambda out: out.write(text.encode("utf-8")))
    return target


def _versioned_by_file(entry: ModelEntry) -> bool:
    return entry.embedder is not None and entry.embedder.version_from_file


def _known_files(entry: ModelEntry) -> str:
    pinned = [f"{f.name} {f.sha256[:12]}…" for f in entry.files if f.pinned]
    unpinned = [f.name for f in entry.files if not f.pinned]
    text = "known: " + (", ".join(pinned) or "none")
    if unpinned:
        text += f"; {', '.join(unpinned)} has no published SHA-256 (pull records it)"
    return text


def _download_file(entry: ModelEntry) -> PackFile:
    for file in entry.files:
        if file.url:
            return file
    raise FaceRecError(f"the {entry.name!r} pack has no download; import its file instead")


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
            earlier = installed.get("sha256") if installed.get("origin") == file.url else None
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
        target = install_pack_file(
            entry, fetched, model_dir, verify=True, trust=trust, origin=file.url
        )
    lines.append(f"installed {target}")
    return lines


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


def cmd_pull(args: argparse.Namespace) -> int:
    model_dir: Path = Settings().models.model_dir
    entry = pack_entry(args.name)
    try:
        if entry.conversion is not None:
            for report in pull_pack(model_dir / entry.pack, pack=entry):
                print(report.summary())
        else:
            print("\n".join(pull_file_pack(entry, model_dir)))
        print(licence_note(entry))
        return 0
    except FaceRecError as exc:
        print(f"facerec: {exc.message}")
        return 1


def cmd_import(args: argparse.Namespace) -> int:
    model_dir: Path = Settings().models.model_dir
    entry = pack_entry(args.name)
    source = Path(args.path)
    try:
        if entry.conversion is not None:
            folder = source if source.is_dir() else source.parent
            reports = convert_pack(
                folder, model_dir / entry.pack, pack=entry, verify_sha256=not args.no_verify
            )
            for report in reports:
                print(report.summary())
        else:
            if not source.is_file():
                print(f"facerec: {source} is not a file")
                return 1
            installed = install_pack_file(entry, source, model_dir, verify=not args.no_verify)
            print(f"installed {installed}")
        print(licence_note(entry))
        return 0
    except (FaceRecError, FileNotFoundError) as exc:
        print(f"facerec: {getattr(exc, 'message', exc)}")
        return 1


def cmd_convert(args: argparse.Namespace) -> int:
    entry = pack_entry(args.name)
    if entry.conversion is None:
        print(f"facerec: only {', '.join(converted_pack_names())} need converting")
        return 1
    dest = Path(args.dest) if args.dest else Settings().models.model_dir / entry.pack
    try:
        for report in convert_pack(
            Path(args.src), dest, pack=entry, verify_sha256=not args.no_verify
        ):
            print(report.summary())
    except (FaceRecError, FileNotFoundError) as exc:
        print(f"facerec: {getattr(exc, 'message', exc)}")
        return 1
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
    pull = models.add_parser("pull", help="download a model pack (pinned URL + SHA-256)")
    pull.add_argument("name", choices=pack_names())
    pull.set_defaults(func=cmd_pull)

    imp = models.add_parser("import", help="install a model pack from local files (air-gapped)")
    imp.add_argument("name", choices=pack_names())
    folders = ", ".join(converted_pack_names())
    imp.add_argument("path", help=f"the file (or, for {folders}, the folder of upstream files)")
    imp.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    imp.set_defaults(func=cmd_import)

    conv = models.add_parser("convert", help="convert PyTorch weights to ONNX (needs torch)")
    conv.add_argument("name", choices=converted_pack_names())
    conv.add_argument("--src", required=True, help="folder with the upstream .pth files")
    conv.add_argument("--dest", help="output folder (default: <model_dir>/<pack>)")
    conv.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    conv.set_defaults(func=cmd_convert)

    db = top.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply the migrations")
    upgrade.set_defaults(func=cmd_db_upgrade)
