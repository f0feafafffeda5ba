"""The whole OpenAPI description, fuzzed against a real ``facerec serve`` process: schemathesis
generates requests for every operation, valid and invalid by the schema, and every answer must
be a documented, schema-conformant response, never a 5xx. The pack models are installed, so no
request meets the documented 503 ``liveness_unavailable``. Examples per operation and mode are
bounded and derandomised."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from bench.server import running_server
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 10
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)


@pytest.fixture(scope="module")
def api_schema(pack_model_dir: Path) -> Iterator[schemathesis.BaseSchema]:
    with running_server({"FACEREC_MODELS__MODEL_DIR": str(pack_model_dir)}) as server:
        yield schemathesis.openapi.from_url(f"{server.client.base_url}/openapi.json")


def fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call()
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_every_operation(
    api_schema: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            fuzz(operation, mode)
        except Unsatisfiable:  # nothing of this operation can be made invalid by the schema
            continue
        except Exception as exc:  # collect every operation's failure, then fail once
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
