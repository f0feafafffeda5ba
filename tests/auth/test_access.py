"""When authentication is on, and how a key is read from the request."""

from __future__ import annotations

import logging

import pytest

from facerec.auth.access import auth_required, presented_key, warn_if_open
from facerec.config import Settings


@pytest.mark.parametrize(
    ("host", "auth", "required"),
    [
        ("127.0.0.1", {}, False),
        ("::1", {}, False),
        ("localhost", {}, False),
        ("127.0.0.1", {"required": True}, True),
        ("0.0.0.0", {}, True),
        ("10.1.2.3", {}, True),
        ("0.0.0.0", {"allow_unauthenticated": True}, False),
        ("0.0.0.0", {"allow_unauthenticated": True, "required": True}, True),
    ],
)
def test_auth_required(host: str, auth: dict[str, bool], required: bool) -> None:
    settings = Settings(server={"host": host}, auth=auth)  # type: ignore[arg-type]
    assert auth_required(settings) is required


def test_environment_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_AUTH__REQUIRED", "true")
    monkeypatch.setenv("FACEREC_AUTH__RATE_PER_SECOND", "5")
    monkeypatch.setenv("FACEREC_AUTH__PEPPER", "s3cret")
    settings = Settings()
    assert auth_required(settings) and settings.auth.rate_per_second == 5
    assert settings.auth.pepper is not None and "s3cret" not in repr(settings)


def test_open_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(server={"host": "0.0.0.0"}, auth={"allow_unauthenticated": True})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        warn_if_open(settings)
    assert "authentication is OFF" in caplog.text
    caplog.clear()
    warn_if_open(Settings())
    assert caplog.text == ""


def test_presented_key() -> None:
    assert presented_key({"authorization": "Bearer fk_1"}) == "fk_1"
    assert presented_key({"authorization": "bearer   fk_1 "}) == "fk_1"
    assert presented_key({"x-api-key": " fk_2 "}) == "fk_2"
    assert presented_key({"authorization": "Basic abc", "x-api-key": "fk_2"}) == "fk_2"
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None
