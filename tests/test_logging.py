"""Logs are owner-only and never carry the query strings (person names) of requests."""

from __future__ import annotations

import logging
from pathlib import Path

from facerec.config import ServerSettings
from facerec.logging_setup import RedactQueryStrings, configure_logging


def test_access_log_lines_drop_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/face-recognition/persons?name=Grace+Hopper", "1.1", 200),
        None,
    )
    assert RedactQueryStrings().filter(record)
    line = record.getMessage()
    assert "Grace" not in line and "/api/face-recognition/persons" in line


def test_log_files_are_owner_only(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    configure_logging(ServerSettings(log_dir=logs))
    try:
        assert (logs.stat().st_mode & 0o777) == 0o700
        assert ((logs / "facerec.log").stat().st_mode & 0o777) == 0o600
        assert any(
            isinstance(f, RedactQueryStrings) for f in logging.getLogger("uvicorn.access").filters
        )
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "_facerec", False):
                root.removeHandler(handler)
                handler.close()
