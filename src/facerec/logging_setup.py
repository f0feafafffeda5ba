"""Logging, configured once: console plus a size-rotated file under ``server.log_dir``."""

from __future__ import annotations

import logging
import logging.handlers

from facerec.config import ServerSettings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(server: ServerSettings) -> None:
    root = logging.getLogger()
    root.setLevel(server.log_level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_facerec", False):
            root.removeHandler(handler)
    console = logging.StreamHandler()
    handlers: list[logging.Handler] = [console]
    try:
        # Owner-only: logs name persons' ids and requests' paths.
        server.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_file = server.log_dir / "facerec.log"
        log_file.touch(mode=0o600, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file,
                maxBytes=server.log_file_max_bytes,
                backupCount=server.log_file_backups,
                encoding="utf-8",
            )
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("file logging disabled: %s", exc)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._facerec = True  # type: ignore[attr-defined]
        root.addHandler(handler)
