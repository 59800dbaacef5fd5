"""Property-based tests (hypothesis): arbitrary bytes and strings never raise anything but the service's 4xx errors.

The decoding path is driven with arbitrary bytes, with bytes behind each accepted format's
magic number, and with valid images of every format mutated byte by byte (flips,
insertions, deletions, truncations): what comes back is a (28, 28) uint8 tensor or a
ServiceError with a 4xx status. Labels, the multipart parser, the upload-limit and API-key
middlewares, and the routes themselves get the same treatment.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image
from starlette.requests import Request

import models
from models import image_files
from service.app import create_app
from service.errors import InvalidInput, ServiceError
from service.inputs import decode_upload, parse_label, pick_model, read_multipart
from service.limits import RequestLimitsMiddleware
from service.security import ApiKeyMiddleware
from tests.robustness.corpus import PIXELS, encode
from tests.robustness.support import check_answer
from tests.service.support import settings_for, wait_ready

pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.*"),
]


def _seed_images() -> dict[str, bytes]:
    gray = Image.fromarray(PIXELS)
    rgb = Image.fromarray(np.stack([PIXELS] * 3, axis=-1))
    return {
        "png": encode(gray, "PNG"),
        "png-rgba": encode(rgb.convert("RGBA"), "PNG"),
        "png-16": encode(Image.fromarray(PIXELS.astype(np.uint16) * 257), "PNG"),
        "png-palette": encode(gray.convert("P"), "PNG", transparency=3),
        "jpeg": encode(rgb, "JPEG"),
        "jpeg-progressive": encode(rgb, "JPEG", progressive=True),
        "gif": encode(gray.convert("P"), "GIF"),
        "bmp": encode(rgb, "BMP"),
        "bmp-rle": encode(gray.convert("P"), "BMP", compression=1) if _bmp_rle_supported() else encode(gray, "BMP"),
        "tiff": encode(gray, "TIFF"),
        "tiff-lzw": encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-float": encode(Image.fromarray(PIXELS.astype(np.float32)), "TIFF"),
        "webp": encode(rgb, "WEBP"),
        "webp-lossless-alpha": encode(rgb.convert("RGBA"), "WEBP", lossless=True),
    }


def _bmp_rle_supported() -> bool:
    try:
        encode(Image.new("P", (2, 2)), "BMP", compression=1)
    except (OSError, ValueError, TypeError):
        return False
    return True


SEEDS = _seed_images()
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"BM", b"II*\0", b"MM\0*", b"RIFF\0\0\0\0WEBPVP8"]


def _decodes_or_4xx(data: bytes, max_pixels: int = 1024 * 1024) -> None:
    try:
        tensor = anyio.run(lambda: decode_upload(data, max_pixels=max_pixels))
    except ServiceError as exc:
        assert exc.status_code in (415, 422), exc
        assert exc.detail and len(exc.detail) < 500
    else:
        assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (28, 28)


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_get_a_4xx(data: bytes) -> None:
    _decodes_or_4xx(data)


@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_bytes_behind_a_magic_number_decode_or_get_a_4xx(magic: bytes, rest: bytes) -> None:
    _decodes_or_4xx(magic + rest)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image of some accepted format with a few bytes flipped, inserted or deleted, maybe truncated."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["set", "insert", "delete", "word"]))
        if kind == "set":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:  # extreme 16- and 32-bit values, where sizes, offsets and counts live
            data[at : at + 4] = draw(
                st.sampled_from([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\xff\xff\xff", b"\xff\xff"])
            )
        if not data:
            data = bytearray(b"\0")
    if draw(st.booleans()):
        data = data[: draw(st.integers(1, len(data)))]
    return bytes(data)


@given(mutated_images())
def test_mutated_images_decode_or_get_a_4xx(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _decodes_or_4xx(data)


@given(mutated_images(), st.integers(1, 4096))
def test_the_pixel_limit_holds_for_any_image(data: bytes, max_pixels: int) -> None:
    """Whatever the bytes, nothing declaring more than max_pixels is decoded."""
    try:
        img = image_files.open_image(data, max_pixels=max_pixels)
    except image_files.ImageDecodeError:
        return
    with img:
        assert img.width * img.height <= max_pixels


@given(st.text(max_size=300))
def test_any_text_is_a_label_or_a_422(text: str) -> None:
    try:
        label = parse_label(text)
    except InvalidInput as exc:
        assert exc.status_code == 422 and len(exc.detail) < 400, exc.detail
    else:
        assert label is None or 0 <= label < models.NUM_CLASSES


@given(st.integers(0, 9), st.sampled_from([str.lower, str.upper, str.title, lambda s: s]), st.text(" \t", max_size=3))
def test_every_id_and_name_is_read_back(label: int, case, pad: str) -> None:
    assert parse_label(pad + str(label) + pad) == label
    assert parse_label(pad + case(models.NAMES[label]) + pad) == label


@given(st.one_of(st.none(), st.text(max_size=20)), st.one_of(st.none(), st.text(max_size=20)))
def test_model_choice_is_a_name_none_or_a_422(query: str | None, field: str | None) -> None:
    try:
        chosen = pick_model(query, field)
    except InvalidInput:
        return
    assert chosen is None or chosen.strip()


def _request(body_chunks: list[bytes], content_type: bytes | None) -> Request:
    headers = [] if content_type is None else [(b"content-type", content_type)]
    chunks = iter(body_chunks)

    async def receive() -> dict:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    return Request({"type": "http", "method": "POST", "path": "/classify", "headers": headers}, receive)


BOUNDARY = b"fuzzboundary"
_PART_PIECES = st.sampled_from(
    [
        b"--" + BOUNDARY + b"\r\n",
        b"--" + BOUNDARY + b"--\r\n",
        b'Content-Disposition: form-data; name="image"; filename="x.png"\r\n',
        b'Content-Disposition: form-data; name="label"\r\n',
        b"Content-Type: image/png\r\n",
        b"\r\n",
        b"8",
        SEEDS["png"],
    ]
)


@given(
    st.lists(st.one_of(_PART_PIECES, st.binary(max_size=64)), max_size=24),
    st.sampled_from(
        [
            b"multipart/form-data; boundary=" + BOUNDARY,
            b'multipart/form-data; boundary="' + BOUNDARY + b'"',
            b"multipart/form-data",
            b"multipart/form-data; boundary=",
            b"text/plain",
            None,
        ]
    ),
    st.integers(1, 64),
)
def test_any_body_parses_or_gets_a_4xx(pieces: list[bytes], content_type: bytes | None, chunk: int) -> None:
    body = b"".join(pieces)
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    try:
        parts = anyio.run(read_multipart, _request(chunks, content_type))
    except ServiceError as exc:
        assert exc.status_code in (400, 415, 422), exc
    else:
        assert len(parts) <= 16


async def _call(middleware, headers: list[tuple[bytes, bytes]], path: str = "/classify") -> int:
    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await middleware(app)(scope, receive, send)
    return sent[0]["status"]


@given(st.lists(st.binary(max_size=24), min_size=1, max_size=3))
def test_any_content_length_is_read_or_refused(values: list[bytes]) -> None:
    headers = [(b"content-length", value) for value in values]
    status = anyio.run(_call, lambda app: RequestLimitsMiddleware(app, max_bytes=1000), headers)
    if len(set(v.strip() for v in values)) == 1 and values[0].strip().isdigit():
        assert status == (200 if int(values[0]) <= 1000 else 413)
    else:
        assert status == 400


_KEY = b"s3cret-key"


@given(
    st.one_of(st.just(_KEY), st.binary(max_size=64)),
    st.one_of(st.just(b"Bearer " + _KEY), st.just(b"bearer  " + _KEY + b" "), st.binary(max_size=64)),
    st.sampled_from(["/classify", "/generate", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"]),
)
def test_only_the_key_lets_a_request_in(key: bytes, authorization: bytes, path: str) -> None:
    headers = [(b"x-api-key", key), (b"authorization", authorization)]
    status = anyio.run(_call, lambda app: ApiKeyMiddleware(app, api_key=_KEY.decode()), headers, path)
    scheme, _, credentials = authorization.partition(b" ")
    right = key == _KEY or (scheme.lower() == b"bearer" and credentials.strip(b" \t") == _KEY)
    if path in ("/healthz", "/readyz", "/metrics"):
        assert status == 200  # the probes stay open
    else:
        assert status == (200 if right else 401)


# The routes, in process ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_client(weights_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(weights_dir)), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


_FIELD_NAMES = st.sampled_from(["image", "label", "model", "x", "", "IMAGE", "image\0"])
_VALUES = st.one_of(
    st.binary(max_size=256),
    st.sampled_from([SEEDS["png"], SEEDS["jpeg"], SEEDS["gif"], b"8", b"Bag", b"detector", b"discriminator"]),
    mutated_images(),
)


@given(
    st.lists(st.tuples(_FIELD_NAMES, _VALUES, st.booleans(), st.text(max_size=40)), min_size=1, max_size=5),
    st.sampled_from(["/classify", "/classify?model=discriminator", "/classify?model=", "/classify?model=%00"]),
)
def test_any_form_gets_an_answer_or_a_clear_4xx(
    app_client: TestClient, fields: list[tuple[str, bytes, bool, str]], path: str
) -> None:
    boundary = "hypothesisboundary"
    body = b""
    for name, value, as_file, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if as_file else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    response = app_client.post(
        path, content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code in (200, 400, 415, 422), response.text
    check_answer(response)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@given(
    st.dictionaries(
        st.sampled_from(["label", "seed", "n", "scale", "format", "other"]),
        st.one_of(st.text(max_size=30), st.integers(-(2**40), 2**40).map(str)),
        max_size=5,
    )
)
def test_any_query_gets_images_or_a_422(app_client: TestClient, query: dict[str, str]) -> None:
    n, scale = _int_or_none(query.get("n")) or 1, _int_or_none(query.get("scale")) or 1
    assume(abs(n) * scale**2 <= 4000)  # keep each example small (the largest answer is tested in the corpus)
    response = app_client.get("/generate", params=query)
    assert response.status_code in (200, 422), response.text
    check_answer(response)
