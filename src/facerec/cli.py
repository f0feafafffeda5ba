"""Command line: ``facerec serve | check | models list|pull|import|remove|verify|convert |
keys ... | db upgrade``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from facerec.config import Settings

if TYPE_CHECKING:
    from facerec.checks import CheckResult


def _settings_with(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with command-line options on top.

    Options are also written to the environment so that uvicorn's worker processes, which build
    their own Settings, see them too.
    """
    overrides = {
        "FACEREC_SERVER__HOST": getattr(args, "host", None),
        "FACEREC_SERVER__PORT": getattr(args, "port", None),
        "FACEREC_SERVER__WORKERS": getattr(args, "workers", None),
        "FACEREC_SERVER__LOG_LEVEL": getattr(args, "log_level", None),
        "FACEREC_SERVER__LOG_DIR": getattr(args, "log_dir", None),
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    return Settings()


def cmd_check(args: argparse.Namespace) -> int:
    from facerec.checks import format_table, run_checks

    results = run_checks(_settings_with(args), with_models=not args.skip_models)
    print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


def _checks_apart() -> list[CheckResult]:
    """The system checks in a short-lived process: with several workers this process only
    supervises them, and would otherwise keep the checks' imports and model heap (~250 MB)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_fresh_checks).result()


def _fresh_checks() -> list[CheckResult]:
    from facerec.checks import run_checks

    return run_checks(Settings())  # the options were written to the environment


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from facerec.checks import core_advice, format_table, run_checks
    from facerec.logging_setup import configure_logging

    # Everything the service writes (database, WAL, index snapshots, logs, pending purges) is
    # owner-only: it holds biometric data.
    os.umask(0o077)
    settings = _settings_with(args)
    configure_logging(settings.server)
    if not args.skip_checks:
        results = run_checks(settings) if settings.server.workers == 1 else _checks_apart()
        failed = [r for r in results if not r.ok]
        if failed:
            print(format_table(results), file=sys.stderr)
            print("\nfacerec: system checks failed; not starting.", file=sys.stderr)
            return 2
    advice = core_advice(settings)
    if advice is not None:
        logging.getLogger("facerec").warning("%s", advice)
    server = settings.server
    uvicorn.run(
        "facerec.app:serve_app",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        log_level=server.log_level,
        log_config=None,  # keep our handlers (console + rotating file)
    )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from facerec.inference.manager import ModelManager
    from facerec.inference.registry import build_models

    settings = Settings()
    manager = ModelManager(build_models(settings), settings.models)
    print(f"model directory: {settings.models.model_dir} (FACEREC_MODELS__MODEL_DIR)")
    for status in manager.status():
        state = (
            "installed" if status.installed else f"not installed ({status.not_installed_reason})"
        )
        use = "commercial use ok" if status.commercial_use else "NON-COMMERCIAL"
        aliases = f" (alias: {', '.join(status.aliases)})" if status.aliases else ""
        print(
            f"{status.name:<14} {status.task:<10} {status.source:<32} {use:<17} {state}{aliases}"
            f"\n{'':<14} licence: {status.license}"
            + (f" <{status.license_url}>" if status.license_url else "")
        )
    if not settings.models.allow_non_commercial:
        print(
            "auto never picks a NON-COMMERCIAL model; name it explicitly or set "
            "FACEREC_MODELS__ALLOW_NON_COMMERCIAL=true"
        )
    return 0


def build_parser(*, tools: bool = True) -> argparse.ArgumentParser:
    """Every command; ``tools=False``: only serve/check/models list, so ``facerec serve`` (the
    uvicorn supervisor of several workers) does not import the tools' libraries (~90 MiB)."""
    parser = argparse.ArgumentParser(prog="facerec", description="Face recognition service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"])
    serve.add_argument("--log-dir")
    serve.add_argument("--skip-checks", action="store_true", help="start without system checks")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="print the system checks as a table")
    check.add_argument("--skip-models", action="store_true", help="skip loading the models")
    check.set_defaults(func=cmd_check)

    models = sub.add_parser("models", help="list, pull, import, remove or verify model packs")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser("list", help="every known model and whether it is installed")
    listing.set_defaults(func=cmd_models_list)
    if not tools:
        return parser
    from facerec import packs_cli

    packs_cli.register(sub, models_sub)
    from facerec.auth import cli as keys_cli

    keys_cli.register(sub)
    from facerec import gallery_cli

    gallery_cli.register(sub)
    from facerec.bulk import cli as bulk_cli

    bulk_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(tools=argv[:1] != ["serve"]).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
