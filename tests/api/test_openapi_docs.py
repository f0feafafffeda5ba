"""The published API description is complete: every operation has a summary and a description,
every JSON request body shows an example, multipart routes describe their form fields, and every
operation documents its error answers with the one error envelope (``ErrorResponse``)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

METHODS = {"get", "post", "put", "patch", "delete"}
ERROR_REF = "#/components/schemas/ErrorResponse"
# Probes that never answer the error envelope: /health is 200 while the process runs and
# /ready answers its own Readiness body with 503.
NO_ERROR_ENVELOPE = {("get", "/health"), ("get", "/ready")}


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _schema(spec: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    name = ref.removeprefix("#/components/schemas/")
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def test_every_operation_has_summary_and_description(spec: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for method, path, op in _operations(spec)
        if not op.get("summary", "").strip() or not op.get("description", "").strip()
    ]
    assert not missing, f"operations without summary or description: {missing}"


def test_descriptions_name_error_codes(spec: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for method, path, op in _operations(spec)
        if (method, path) not in NO_ERROR_ENVELOPE and "`" not in op.get("description", "")
    ]
    assert not missing, f"descriptions that name no error code: {missing}"


def test_every_json_request_body_has_an_example(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, op in _operations(spec):
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is None:
            continue
        schema = _schema(spec, media["schema"])
        if not (media.get("example") or media.get("examples") or schema.get("examples")):
            missing.append(f"{method.upper()} {path}")
    assert not missing, f"JSON request bodies without an example: {missing}"


def test_json_examples_use_only_declared_fields(spec: dict[str, Any]) -> None:
    """An example never shows a field the schema does not have (a renamed field, a typo)."""
    wrong = []
    for method, path, op in _operations(spec):
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is None:
            continue
        schema = _schema(spec, media["schema"])
        fields = set(schema.get("properties", {}))
        for example in schema.get("examples", []):
            unknown = set(example) - fields
            missing_required = set(schema.get("required", [])) - set(example)
            if unknown or missing_required:
                wrong.append(f"{method.upper()} {path}: {unknown or missing_required}")
    assert not wrong, f"examples that do not fit their schema: {wrong}"


def test_multipart_routes_describe_their_form_fields(spec: dict[str, Any]) -> None:
    undescribed = []
    for method, path, op in _operations(spec):
        media = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if media is None:
            continue
        schema = _schema(spec, media["schema"])
        description = op.get("description", "")
        for name, prop in schema.get("properties", {}).items():
            if not prop.get("description") and f"`{name}`" not in description:
                undescribed.append(f"{method.upper()} {path}: {name}")
    assert not undescribed, f"form fields described nowhere: {undescribed}"


def test_every_operation_documents_errors_with_the_envelope(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, op in _operations(spec):
        if (method, path) in NO_ERROR_ENVELOPE:
            continue
        errors = {
            status: response
            for status, response in op.get("responses", {}).items()
            if status[0] in "45"
        }
        if not errors:
            missing.append(f"{method.upper()} {path}: no 4xx/5xx answer documented")
            continue
        for status, response in errors.items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") != ERROR_REF:
                missing.append(f"{method.upper()} {path}: {status} is not ErrorResponse")
    assert not missing, f"error answers not documented with ErrorResponse: {missing}"
