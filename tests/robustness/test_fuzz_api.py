"""Schema-driven fuzzing: schemathesis against the service's own OpenAPI schema, over real HTTP.

Every operation of ``/openapi.json`` (the web page and /explain included once the service has
them) is called with generated valid and invalid inputs, a bounded number per operation
(FUZZ_EXAMPLES, default 40). Each answer must be no 5xx, must match its declared
status codes, content type, headers and body schema, and must pass the checks every answer
of the service passes (request id, JSON errors, no traces or paths). Checks that the
schema cannot express are left out: labels are free text in the schema ("3", "Dress",
"ankle boot" all work), so generated strings are mostly refused with a 422, as they should be.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_plus

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.robustness.support import LocalService, check_parts, metric_total

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="session")
def api_schema(served: LocalService):
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json", wait_for_schema=30)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_survives_fuzzing(case, served: LocalService) -> None:
    response = case.call(timeout=30)
    case.validate_response(response, checks=CHECKS)
    headers = {name.lower(): values[-1] for name, values in response.headers.items()}
    sent = response.request
    body = sent.body.decode("utf-8", "replace") if isinstance(sent.body, bytes) else str(sent.body or "")
    echo = f"{sent.url}\n{unquote_plus(sent.url or '')}\n{body}"
    check_parts(response.status_code, headers, response.content, f"{case.method} {case.path}", echo)
    assert served.process.poll() is None, "the service died"


@pytest.mark.slow
def test_the_server_counted_no_5xx_while_fuzzed(served: LocalService) -> None:
    """The server's own count agrees: after the fuzzing, no answer but /readyz's warm-up 503s was a 5xx."""
    text = httpx.get(f"{served.url}/metrics", timeout=10).text
    total = metric_total(text, "fgan_http_requests_total")
    errors = [
        line
        for line in text.splitlines()
        if line.startswith("fgan_http_requests_total") and 'status="5' in line and 'route="/readyz"' not in line
    ]
    print(f"the server answered {total:.0f} requests")
    assert total > 0 and not errors, errors
