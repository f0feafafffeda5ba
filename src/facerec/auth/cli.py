"""``facerec keys create | list | revoke``: API keys on the configured database
(``Settings().db.url``), created and migrated if needed, whether or not the service runs.

The command line acts as the operator: every tenant, every scope (audited with ``via: cli``).
A key revoked here stops working in running services within ``auth.cache_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from facerec.auth import manage
from facerec.auth.access import AuthServices, open_auth
from facerec.auth.keys import KeySpec, parse_expiry, split_list
from facerec.auth.principal import ANONYMOUS, DEFAULT_TENANT, SCOPES
from facerec.auth.service import utcnow
from facerec.config import Settings
from facerec.errors import FaceRecError

T = TypeVar("T")


def _run(work: Callable[[AuthServices], Awaitable[T]]) -> T:
    async def main() -> T:
        from facerec.storage.engine import create_engine
        from facerec.storage.migrate import upgrade_database

        settings = Settings()
        engine = create_engine(settings.db)
        try:
            await upgrade_database(settings, engine=engine)
            auth = open_auth(settings, engine)
            try:
                return await work(auth)
            finally:
                await auth.close()
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _fail(exc: FaceRecError) -> int:
    print(f"facerec: {exc.message} ({exc.code})", file=sys.stderr)
    return 1


def cmd_create(args: argparse.Namespace) -> int:
    try:
        spec = KeySpec(
            tenant=args.tenant,
            scopes=split_list(args.scopes) or frozenset(),
            collections=split_list(args.collections),
            expires_at=parse_expiry(args.expires, utcnow()),
            name=args.name,
        )
        text, record = _run(lambda auth: manage.create_key(auth, ANONYMOUS, spec, via="cli"))
    except FaceRecError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps({"key": text, **record.public(utcnow())}))
    else:
        print(f"key_id:  {record.key_id}\ntenant:  {record.tenant}")
        print(f"scopes:  {','.join(sorted(record.scopes))}")
        if record.expires_at:
            print(f"expires: {record.expires_at.isoformat()}")
        print(f"\n{text}\n\nThe key is shown this once; store it now.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    try:
        records = _run(lambda auth: manage.list_keys(auth, ANONYMOUS, args.tenant))
    except FaceRecError as exc:
        return _fail(exc)
    now = utcnow()
    if args.json:
        print(json.dumps({"keys": [r.public(now) for r in records]}))
        return 0
    for r in records:
        expires = r.expires_at.date().isoformat() if r.expires_at else "never"
        collections = ",".join(sorted(r.collections)) if r.collections is not None else "*"
        print(
            f"{r.key_id}  {r.tenant:<16} {r.status(now):<8} expires {expires:<10} "
            f"scopes {','.join(sorted(r.scopes))}  collections {collections}  {r.name}"
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        record = _run(lambda auth: manage.revoke_key(auth, ANONYMOUS, args.key_id, via="cli"))
    except FaceRecError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(record.public(utcnow())))
    else:
        print(f"revoked {record.key_id} (tenant {record.tenant})")
    return 0


def register(top: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = top.add_parser("keys", help="create, list and revoke API keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)

    create = sub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", default=DEFAULT_TENANT)
    create.add_argument(
        "--scopes", required=True, help=f"comma-separated: {','.join(sorted(SCOPES))}"
    )
    create.add_argument("--collections", help="comma-separated; default: every collection")
    create.add_argument("--expires", help="2027-01-01, an ISO datetime, or 30d / 12h / 90m")
    create.add_argument("--name", default="", help="a note: who or what uses the key")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_create)

    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    revoke = sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(func=cmd_revoke)
