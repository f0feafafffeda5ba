"""``facerec gallery migrate | status | cut-over | rollback | finish``: migrate a collection to
another embedding model on the configured database, whether or not the service runs.

``migrate`` re-embeds in the foreground and prints progress; interrupted (or crashed), the same
command continues the open migration from its persisted progress (and a running service takes it
over once its lease expires). ``--tenant`` names the collection's tenant (default: ``default``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from facerec.config import Settings
from facerec.errors import FaceRecError
from facerec.values import DEFAULT_TENANT, qualify

T = TypeVar("T")


def _run(work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        from facerec.domain.migration import GalleryMigrations
        from facerec.inference.manager import ModelManager
        from facerec.inference.registry import build_models
        from facerec.storage.engine import create_engine
        from facerec.storage.gallery_migration import SqlMigrationStore
        from facerec.storage.migrate import upgrade_database
        from facerec.storage.sealing import Sealer
        from facerec.storage.sql_repository import SqlGalleryRepository

        settings = Settings()
        engine = create_engine(settings.db)
        try:
            await upgrade_database(settings, engine=engine)
            sealer = Sealer.from_settings(settings.db)
            repository = SqlGalleryRepository(engine, sealer=sealer)
            service = GalleryMigrations(
                store=SqlMigrationStore(engine, sealer),
                repository=repository,
                models=ModelManager(build_models(settings), settings.models),
                batch_size=settings.gallery.migration_batch_size,
                lease_seconds=settings.gallery.migration_lease_seconds,
            )
            try:
                return await work(service)
            finally:
                await service.close()
                await repository.close()
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _line(record: Any) -> str:
    total = max(record.total, record.done)
    return (
        f"{record.id}  {record.status:<11} {record.done}/{total} faces  "
        f"{record.from_space} -> {record.to_space}"
        + (
            f"  ({record.without_chip} without a chip: need a new photo)"
            if record.without_chip
            else ""
        )
        + (f"  error: {record.error}" if record.error else "")
    )


def _print_report(report: dict[str, Any] | None) -> None:
    if report:
        print(json.dumps(report, indent=2, default=str))


def cmd_migrate(args: argparse.Namespace) -> int:
    collection = qualify(args.tenant, args.collection)

    async def work(service: Any) -> Any:
        open_ = [
            r for r in await service.store.migrations(collections=[collection], status=["running"])
        ]
        resumable = [r for r in open_ if args.to in (r.to_embedder, r.to_space)]
        if resumable:
            record = resumable[0]
            print(f"resuming {record.id} at {record.done}/{record.total} faces")
        else:
            record = await service.start(collection, args.to)
            print(f"started {record.id}: {record.total} faces to re-embed")
        while True:
            record = await service.run(record.id, progress=lambda r: print(_line(r), flush=True))
            if record.status != "running":
                return record
            await asyncio.sleep(1.0)  # another process holds the lease: follow it

    try:
        record = _run(work)
    except FaceRecError as exc:
        return _fail(exc)
    print(_line(record))
    if args.report:
        _print_report(record.report)
    return 0 if record.status == "complete" else 1


def _action(name: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def work(service: Any) -> Any:
            if name == "finish":
                return await service.finish(args.migration_id, force=args.force)
            return await getattr(service, name)(args.migration_id)

        try:
            record = _run(work)
        except FaceRecError as exc:
            return _fail(exc)
        print(_line(record))
        return 0

    return command


def cmd_status(args: argparse.Namespace) -> int:
    async def work(service: Any) -> Any:
        if args.migration_id:
            return [await service.get(args.migration_id)]
        keys = [qualify(args.tenant, args.collection)] if args.collection else None
        return await service.store.migrations(collections=keys)

    try:
        records = _run(work)
    except FaceRecError as exc:
        return _fail(exc)
    for record in records:
        print(_line(record))
    if args.migration_id and args.report:
        _print_report(records[0].report)
    return 0


def _fail(exc: FaceRecError) -> int:
    print(f"facerec: {exc.message} ({exc.code})", file=sys.stderr)
    return 1


def register(sub: Any) -> None:
    gallery = sub.add_parser("gallery", help="migrate a collection to another embedding model")
    gallery_sub = gallery.add_subparsers(dest="gallery_command", required=True)
    migrate = gallery_sub.add_parser("migrate", help="re-embed a collection's kept face chips")
    migrate.add_argument("--collection", default="default")
    migrate.add_argument("--to", required=True, help="an installed embedder, e.g. mobilefacenet")
    migrate.add_argument("--tenant", default=DEFAULT_TENANT)
    migrate.add_argument("--report", action="store_true", help="print the report when complete")
    migrate.set_defaults(func=cmd_migrate)
    status = gallery_sub.add_parser("status", help="migrations and their progress")
    status.add_argument("migration_id", nargs="?")
    status.add_argument("--collection")
    status.add_argument("--tenant", default=DEFAULT_TENANT)
    status.add_argument("--report", action="store_true")
    status.set_defaults(func=cmd_status)
    for name, method, text in (
        ("cut-over", "cut_over", "answer from the new space (when complete)"),
        ("rollback", "rollback", "answer from the old space again"),
        ("finish", "finish", "drop the old space's vectors"),
    ):
        parser = gallery_sub.add_parser(name, help=text)
        parser.add_argument("migration_id")
        if name == "finish":
            parser.add_argument(
                "--force", action="store_true", help="also erase faces without a kept chip"
            )
        parser.set_defaults(func=_action(method))
