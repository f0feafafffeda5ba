"""Model-pack and database commands: ``facerec models pull|import|convert`` and
``facerec db upgrade``.

A pack is weights that no PyPI package ships. With internet, ``pull`` downloads each file from its
pinned upstream URL and checks its pinned SHA-256; air-gapped, ``import`` takes local files (same
check). MiniFASNet's upstream files are PyTorch state dicts: both paths convert them to ONNX (needs
``pip install 'facerec[convert]'``); the service itself never imports torch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from facerec.config import Settings
from facerec.errors import FaceRecError
from facerec.inference.downloads import download_url, sha256_file
from facerec.inference.embedders.packs import EMBEDDER_PACKS
from facerec.inference.embedders.packs import ModelPack as EmbedderPack
from facerec.inference.liveness.convert import ChecksumMismatchError, convert_pack, pull_pack
from facerec.inference.liveness.pack import MINIFASNET_PACK, PACK_DIRNAME

LIVENESS = "minifasnet"


def pack_names() -> list[str]:
    return [LIVENESS, *(n for n, p in EMBEDDER_PACKS.items() if p.supported)]


def _embedder_pack(name: str) -> EmbedderPack:
    pack = EMBEDDER_PACKS.get(name)
    if pack is None or not pack.supported:
        raise SystemExit(f"facerec: unknown or unsupported pack {name!r}; known: {pack_names()}")
    return pack


def install_embedder_file(pack: EmbedderPack, source: Path, model_dir: Path, verify: bool) -> Path:
    """Copy one checked file into ``model_dir/<pack>/`` (atomically: never a half file)."""
    spec = pack.files[0]
    if verify:
        actual = sha256_file(source)
        if actual != spec.sha256:
            raise ChecksumMismatchError(
                f"{source.name}: SHA-256 {actual} is not the published {spec.sha256} "
                "(pass --no-verify to import a file you trust anyway)"
            )
    dest_dir = model_dir / pack.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.name
    with (
        source.open("rb") as src,
        tempfile.NamedTemporaryFile(dir=dest_dir, delete=False, prefix=".import-") as tmp,
    ):
        shutil.copyfileobj(src, tmp)
    os.replace(tmp.name, target)
    return target


def cmd_pull(args: argparse.Namespace) -> int:
    model_dir: Path = Settings().models.model_dir
    try:
        if args.name == LIVENESS:
            for report in pull_pack(model_dir / PACK_DIRNAME, pack=MINIFASNET_PACK):
                print(report.summary())
            return 0
        pack = _embedder_pack(args.name)
        with tempfile.TemporaryDirectory() as work:
            target = Path(work) / pack.files[0].name
            print(f"downloading {pack.files[0].url}")
            download_url(pack.files[0].url, target)
            print(f"installed {install_embedder_file(pack, target, model_dir, verify=True)}")
        return 0
    except FaceRecError as exc:
        print(f"facerec: {exc.message}")
        return 1


def cmd_import(args: argparse.Namespace) -> int:
    model_dir: Path = Settings().models.model_dir
    source = Path(args.path)
    try:
        if args.name == LIVENESS:
            folder = source if source.is_dir() else source.parent
            reports = convert_pack(
                folder, model_dir / PACK_DIRNAME, verify_sha256=not args.no_verify
            )
            for report in reports:
                print(report.summary())
            return 0
        pack = _embedder_pack(args.name)
        if not source.is_file():
            print(f"facerec: {source} is not a file")
            return 1
        installed = install_embedder_file(pack, source, model_dir, verify=not args.no_verify)
        print(f"installed {installed}")
        return 0
    except (FaceRecError, FileNotFoundError) as exc:
        print(f"facerec: {getattr(exc, 'message', exc)}")
        return 1


def cmd_convert(args: argparse.Namespace) -> int:
    if args.name != LIVENESS:
        print(f"facerec: only {LIVENESS} needs converting")
        return 1
    dest = Path(args.dest) if args.dest else Settings().models.model_dir / PACK_DIRNAME
    try:
        for report in convert_pack(Path(args.src), dest, verify_sha256=not args.no_verify):
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
    imp.add_argument("path", help="the file (or, for minifasnet, the folder of .pth files)")
    imp.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    imp.set_defaults(func=cmd_import)

    conv = models.add_parser("convert", help="convert PyTorch weights to ONNX (needs torch)")
    conv.add_argument("name", choices=[LIVENESS])
    conv.add_argument("--src", required=True, help="folder with the upstream .pth files")
    conv.add_argument("--dest", help="output folder (default: <model_dir>/minifasnet)")
    conv.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    conv.set_defaults(func=cmd_convert)

    db = top.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply the migrations")
    upgrade.set_defaults(func=cmd_db_upgrade)
