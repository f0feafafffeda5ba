"""Logging, configured once: console plus a size-rotated file under ``server.log_dir``."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers

from facerec.config import ServerSettings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactQueryStrings(logging.Filter):
    """Access log lines keep the path and drop the query string: queries such as
    ``/persons?name=...`` carry person names, which logs must not."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access: (client address, method, path with query, HTTP version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


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
        with contextlib.suppress(OSError):  # also when an earlier run made them wider
            server.log_dir.chmod(0o700)
            log_file.chmod(0o600)
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
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryStrings) for f in access.filters):
        access.addFilter(RedactQueryStrings())
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._facerec = True  # type: ignore[attr-defined]
        root.addHandler(handler)
