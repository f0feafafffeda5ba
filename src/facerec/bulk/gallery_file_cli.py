"""``facerec export | import``: a collection to and from a portable gallery file
(:mod:`.gallery_io`, :mod:`.gallery_import`), on the configured database (``FACEREC_*`` settings).

Apart from :mod:`.cli` because these never talk to a service: no ``--url``, no client, the
storage opened directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from facerec.bulk.output import fail, results_console
from facerec.config import Settings


def cmd_export(args: argparse.Namespace) -> int:
    from facerec.bulk.gallery_io import export_gallery

    try:
        summary = asyncio.run(
            export_gallery(Settings(), args.collection, Path(args.file), quiet=args.json)
        )
    except (ValueError, OSError) as exc:
        return fail(str(exc), args.json)
    if args.json:
        print(json.dumps(summary))
    else:
        results_console(args).print(
            f"exported {summary['persons']} persons, {summary['faces']} faces "
            f"({summary['chips']} chips) of {args.collection!r} to {args.file}"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from facerec.bulk.gallery_import import GalleryFileError, import_gallery

    try:
        summary = asyncio.run(
            import_gallery(
                Settings(),
                Path(args.file),
                collection=args.collection,
                migrate=args.migrate,
                quiet=args.json,
            )
        )
    except (GalleryFileError, OSError) as exc:
        return fail(str(exc), args.json)
    if args.json:
        print(json.dumps(summary))
    else:
        results_console(args).print(
            f"imported {summary['persons']} persons, {summary['faces']} faces into "
            f"{summary['collection']!r} ({summary['skipped']} persons already there)"
        )
    return 0


def register(sub: Any) -> None:
    export = sub.add_parser("export", help="write a collection to a portable gallery file")
    export.add_argument("file")
    export.add_argument("--collection", default="default")
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="read a gallery file into the configured database")
    imp.add_argument("file")
    imp.add_argument("--collection", help="default: the collection named in the file")
    imp.add_argument(
        "--migrate", action="store_true", help="re-embed into the target's space (not supported)"
    )
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
