"""Schema-driven fuzzing: schemathesis against the service's own OpenAPI schema, over real HTTP.

Every operation of ``/openapi.json`` is called with generated valid and invalid inputs, a bounded
number per operation (FUZZ_EXAMPLES, default 40). Each answer must be no 5xx, must match its
declared status codes, content type, headers and body schema, and must pass the checks every answer
of the service passes (request id, JSON errors, no traces or paths). And the schema must say what
is accepted: every request generated as valid (positive data) gets a 2xx. So the schema lists the
labels, the models this server has, when a label is needed, and the image types; the image part of
a valid request is a real image of a declared type, made here for each.

A server without a detector (the discriminator judges, and needs a label) is fuzzed in full; one with
a detector (label optional, unless the discriminator is asked for) on its two upload routes. Both serve a
sketch translator, so POST /translate is fuzzed too; an image that decodes to one grey (a 1x1 image, say) is a
blank sketch, which the schema cannot express: its 422 is held to the other checks, not to positive data.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from urllib.parse import unquote_plus

import httpx
import jsonschema
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.image_files import MEDIA_TYPES, ImageDecodeError, decode_image
from service.sketches import BLANK_RANGE
from tests.robustness.support import LocalService, check_parts, metric_total, start_server
from tests.service.support import make_detector, make_translator, write_weights

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]
SAVE_OPTIONS = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90}}


@st.composite
def image_files(draw: st.DrawFn, fmt: str) -> bytes:
    """A small image in ``fmt``: gray or colour, of any size from 1x1 to 64x64, with random pixels."""
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    channels = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()


for _format, _media_type in MEDIA_TYPES.items():
    schemathesis.openapi.media_type(_media_type, image_files(_format))


@pytest.fixture(scope="session")
def api_schema(served: LocalService):
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json", wait_for_schema=30)


@pytest.fixture(scope="module")
def served_with_detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    work = tmp_path_factory.mktemp("detector")
    weights = write_weights(work / "weights", detector=make_detector(), translator=make_translator())
    server = start_server(weights, work / "service.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def detector_api_schema(served_with_detector: LocalService):
    return schemathesis.openapi.from_url(f"{served_with_detector.url}/openapi.json", wait_for_schema=30)


schema = schemathesis.pytest.from_fixture("api_schema")
upload_routes_with_detector = schemathesis.pytest.from_fixture("detector_api_schema").include(
    path_regex="^/(classify|explain|translate)$"
)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def schema_valid(case) -> bool:
    """Whether a form body is valid by the schema, images aside (the test's strategies make them).

    schemathesis' coverage phase (4.x) builds one multipart body from the registered media-type strategies and
    fills every other required field with an empty string, whatever that field's schema says (here: one of the
    labels); it calls that body valid. The positive-data check is held back for such a body, and only for it.
    """
    if not isinstance(case.body, dict):
        return True
    form = case.operation.definition.raw["requestBody"]["content"]["multipart/form-data"]["schema"]
    text = {name: value for name, value in case.body.items() if not isinstance(value, bytes)}
    binary = {name for name, value in case.body.items() if isinstance(value, bytes)}
    properties = {name: ({} if name in binary else rule) for name, rule in form["properties"].items()}
    # A file sent for an array of files (/classify/batch's images) is an array of one.
    files = {name: [""] if form["properties"][name].get("type") == "array" else "" for name in binary}
    return jsonschema.Draft202012Validator({**form, "properties": properties}).is_valid({**text, **files})


def blank_sketch(case) -> bool:
    """Whether a /translate request's image decodes to a blank sketch (fewer than BLANK_RANGE greys)."""
    image = case.body.get("image") if case.path == "/translate" and isinstance(case.body, dict) else None
    if not isinstance(image, bytes):
        return False
    try:
        pixels = decode_image(image)
    except ImageDecodeError:
        return False
    return int(pixels.max()) - int(pixels.min()) < BLANK_RANGE


def check(case, server: LocalService) -> None:
    response = case.call(timeout=30)
    positive = schema_valid(case) and not (response.status_code == 422 and blank_sketch(case))
    case.validate_response(response, checks=CHECKS if positive else CHECKS[:-1])
    headers = {name.lower(): values[-1] for name, values in response.headers.items()}
    sent = response.request
    body = sent.body.decode("utf-8", "replace") if isinstance(sent.body, bytes) else str(sent.body or "")
    echo = f"{sent.url}\n{unquote_plus(sent.url or '')}\n{body}"
    check_parts(response.status_code, headers, response.content, f"{case.method} {case.path}", echo)
    assert server.process.poll() is None, "the service died"


@pytest.mark.slow
@schema.parametrize()
@FUZZ
def test_every_operation_survives_fuzzing(case, served: LocalService) -> None:
    check(case, served)


@pytest.mark.slow
@upload_routes_with_detector.parametrize()
@FUZZ
def test_the_upload_routes_of_a_server_with_a_detector_survive_fuzzing(case, served_with_detector) -> None:
    check(case, served_with_detector)


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


@given(st.sampled_from(sorted(MEDIA_TYPES)).flatmap(lambda fmt: st.tuples(st.just(fmt), image_files(fmt))))
@settings(max_examples=30, deadline=None, database=None)
def test_the_strategies_make_images_of_each_declared_type(made: tuple[str, bytes]) -> None:
    fmt, data = made
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == fmt
