"""``facerec enroll | recognize | compare | export | import``: bulk work from the command line.

With ``--url`` (and ``--api-key``) the commands talk to a running service through
:class:`~facerec.client.AsyncFaceRecClient`; without it they work on the configured database
(``FACEREC_*`` settings): ``enroll`` through the enrollment service the app builds (no HTTP),
``recognize``/``compare`` through the app itself in-process, ``export``/``import`` on the storage
(:mod:`.gallery_file_cli`). Every command takes ``--json`` for scripts; long operations show a
progress bar on stderr (:mod:`.output`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.table import Table

from facerec.bulk import gallery_file_cli
from facerec.bulk.folders import FolderError, scan
from facerec.bulk.output import fail, progress_bar, results_console
from facerec.client import AsyncFaceRecClient, FaceRecApiError
from facerec.config import Settings

READY_TIMEOUT_S = 300.0


@asynccontextmanager
async def api_client(args: argparse.Namespace) -> AsyncIterator[AsyncFaceRecClient]:
    """The service at ``--url``, or the app on the configured database in this process."""
    if args.url:
        async with AsyncFaceRecClient(
            args.url, api_key=args.api_key, timeout=args.timeout
        ) as client:
            yield client
        return
    import httpx

    from facerec.app import create_app

    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while not (app.state.facerec and app.state.facerec.ready):
            error = app.state.facerec and app.state.facerec.startup_error
            if error or loop.time() > deadline:
                raise RuntimeError(f"the service did not start: {error or 'timeout'}")
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with AsyncFaceRecClient(
            "http://facerec.local", api_key=args.api_key, transport=transport
        ) as client:
            yield client


# --- enroll -----------------------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace) -> int:
    from facerec.bulk.enroll import enroll_folder, write_rejections

    root = Path(args.dir)
    try:
        persons = scan(root)
    except FolderError as exc:
        return fail(str(exc), args.json)
    total = sum(len(p.photos) for p in persons)
    progress = progress_bar(total, "enrolling", args.json or args.no_progress)

    async def run() -> Any:
        with progress:
            task = progress.add_task("enroll", total=total)

            def report(_: Any) -> None:
                progress.advance(task)

            if args.url:
                from facerec.bulk.backends import RemoteBackend

                async with api_client(args) as client:
                    return await enroll_folder(
                        root,
                        args.collection,
                        RemoteBackend(client, model=args.model),
                        workers=args.workers,
                        report=report,
                        persons=persons,
                        batch_size=args.batch_size,
                    )
            from facerec.bulk.local import LocalBackend, open_local

            async with open_local(Settings(), threads=args.workers) as state:
                return await enroll_folder(
                    root,
                    args.collection,
                    LocalBackend(state, model=args.model),
                    workers=args.workers,
                    report=report,
                    persons=persons,
                    batch_size=args.batch_size,
                )

    try:
        summary = asyncio.run(run())
    except (FaceRecApiError, OSError, RuntimeError) as exc:
        return fail(str(exc), args.json)
    refused = write_rejections(Path(args.report), summary.results) if args.report else None
    if args.json:
        print(json.dumps(summary.as_dict() | {"report": args.report}, default=str))
    else:
        table = Table("person", "file", "status", "face / reason", title="enrollment")
        for r in summary.results:
            detail = r.face_id or "" if r.status == "enrolled" else f"{r.reason}: {r.message}"
            if r.status == "skipped":
                detail = "already enrolled"
            if r.warnings:
                detail += f" (warnings: {', '.join(r.warnings)})"
            style = {"enrolled": "green", "rejected": "red", "duplicate": "yellow"}.get(r.status)
            table.add_row(r.person, r.file, r.status, detail, style=style)
        console = results_console(args)
        console.print(table)
        counts = summary.as_dict()
        console.print(
            f"{counts['enrolled']} enrolled, {counts['skipped']} skipped, {counts['rejected']} "
            f"rejected, {counts['duplicate']} duplicates in {summary.seconds:.1f} s"
            + (f"; rejections: {args.report} ({refused})" if args.report else "")
        )
    return 0


# --- recognize, compare -----------------------------------------------------------------------


def cmd_recognize(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths]

    async def run() -> list[dict[str, Any]]:
        out = []
        async with api_client(args) as client:
            with progress_bar(len(paths), "recognizing", args.json or len(paths) < 3) as progress:
                task = progress.add_task("recognize", total=len(paths))
                for path in paths:
                    try:
                        answer = await client.recognize_all_upload(path, collection=args.collection)
                        out.append({"file": str(path), **answer.model_dump(mode="json")})
                    except (FaceRecApiError, OSError) as exc:
                        code = getattr(exc, "code", type(exc).__name__)
                        out.append(
                            {"file": str(path), "error": {"code": code, "message": str(exc)}}
                        )
                    progress.advance(task)
        return out

    try:
        results = asyncio.run(run())
    except (FaceRecApiError, RuntimeError) as exc:
        return fail(str(exc), args.json)
    if args.json:
        print(json.dumps(results))
    else:
        table = Table("file", "face", "box", "identity", "similarity", title="recognition")
        for item in results:
            if "error" in item:
                table.add_row(item["file"], "-", "-", f"[red]{item['error']['code']}[/red]", "")
                continue
            if not item["faces"]:
                table.add_row(item["file"], "-", "-", "no face", "")
            for face in item["faces"]:
                box = face["bbox"]
                where = f"{box['x1']:.0f},{box['y1']:.0f} {box['width']:.0f}x{box['height']:.0f}"
                best = face.get("best_match")
                who = f"{best['person_name']} ({best['person_id']})" if best else "unknown"
                score = f"{best['similarity']:.3f}" if best else ""
                table.add_row(item["file"], str(face["index"]), where, who, score)
        results_console(args).print(table)
    return 0 if all("error" not in r for r in results) else 1


def cmd_compare(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        async with api_client(args) as client:
            answer = await client.compare_upload(Path(args.a), Path(args.b))
            return answer.model_dump(mode="json")

    try:
        result = asyncio.run(run())
    except (FaceRecApiError, OSError, RuntimeError) as exc:
        return fail(str(exc), args.json)
    if args.json:
        print(json.dumps(result))
    else:
        verdict = "same person" if result["is_same_person"] else "different persons"
        results_console(args).print(
            f"{verdict}: similarity {result['similarity_score']:.3f}, distance "
            f"{result['distance']:.3f} (threshold {result['threshold']:.3f}, "
            f"{result['model_used']})"
        )
    return 0


def _remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running service; default: the configured database")
    parser.add_argument("--api-key", help="X-API-Key for --url")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> None:
    enroll = sub.add_parser("enroll", help="enroll a folder: one sub-folder of photos per person")
    enroll.add_argument("dir")
    enroll.add_argument("--collection", default="default")
    enroll.add_argument(
        "--workers",
        type=int,
        default=4,
        help="offline: inference threads; requests in flight (batches: at most 2)",
    )
    enroll.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="photos per enroll-batch request (many persons at once); 0: one request per photo",
    )
    enroll.add_argument("--report", help="CSV of the rejected photos with their reasons")
    enroll.add_argument("--model", default="auto", help="embedder (model_name), default auto")
    enroll.add_argument("--no-progress", action="store_true")
    _remote_options(enroll)
    enroll.set_defaults(func=cmd_enroll)

    recognize = sub.add_parser("recognize", help="every face of each photo with its identity")
    recognize.add_argument("paths", nargs="+")
    recognize.add_argument("--collection", default="default")
    _remote_options(recognize)
    recognize.set_defaults(func=cmd_recognize)

    compare = sub.add_parser("compare", help="are two photos the same person (1:1)")
    compare.add_argument("a")
    compare.add_argument("b")
    _remote_options(compare)
    compare.set_defaults(func=cmd_compare)

    gallery_file_cli.register(sub)
