"""Unit tests of image conversion, grids, and the streaming upload limit."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from PIL import Image

from models import image_files
from service import rendering
from service.errors import PayloadTooLarge
from service.inputs import decode_upload
from service.limits import RequestLimitsMiddleware


def test_grid_shape_is_as_square_as_possible() -> None:
    assert [rendering.grid_shape(n) for n in (1, 2, 3, 4, 5, 10, 100)] == [
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 2),
        (2, 3),
        (3, 4),
        (10, 10),
    ]


def test_tile_and_upscale() -> None:
    images = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2) + 1
    grid = rendering.tile(images, scale=2)
    assert grid.shape == (8, 8)
    assert (grid[:4, :4] == np.repeat(np.repeat(images[0], 2, 0), 2, 1)).all()
    assert (grid[4:, 4:] == 0).all()


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.fromarray(np.full((4, 4), 1000 * 257 // 1000, dtype=np.uint16)), 1),  # 16-bit 257 -> 1
        (Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), 255),
        (Image.new("RGBA", (4, 4), (255, 255, 255, 128)), 128),  # half-transparent white on black
        (Image.new("LA", (4, 4), (200, 0)), 0),  # fully transparent
        (Image.new("F", (4, 4), 300.0), 255),  # clipped
        (Image.new("RGB", (4, 4), (255, 0, 0)), 76),  # ITU-R 601 luma of red
        (Image.new("HSV", (4, 4), (0, 0, 255)), 255),  # a rare mode goes through RGB
    ],
    ids=["16-bit-low", "16-bit-high", "rgba-half", "la-transparent", "float", "rgb-red", "hsv"],
)
def test_modes_convert_to_8_bit_gray(image: Image.Image, expected: int) -> None:
    gray = image_files.to_gray(image)
    assert gray.mode == "L"
    assert abs(int(np.asarray(gray)[0, 0]) - expected) <= 1


def test_decoded_upload_is_a_28x28_uint8_tensor() -> None:
    pixels = np.repeat(np.repeat(np.arange(28, dtype=np.uint8).reshape(1, 28) * 9, 28, 0), 1, 1)
    data = image_files.encode_png(np.repeat(np.repeat(pixels, 3, 0), 3, 1))  # 84x84
    tensor = anyio.run(lambda: decode_upload(data, max_pixels=100_000))
    assert tensor.shape == (28, 28) and str(tensor.dtype) == "torch.uint8"
    assert (tensor.numpy() == pixels).all()  # 3x3 blocks averaged back exactly


async def _drive(limit: int, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, object, list]:
    """Run the middleware over an app that reads the whole body; return chunks read, app outcome, sent messages."""
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        more = pulled < len(chunks)
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": more}

    async def send(message: dict) -> None:
        sent.append(message)

    outcome: object = None

    async def app(scope, receive, send) -> None:
        nonlocal outcome
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        outcome = total

    scope = {"type": "http", "method": "POST", "path": "/classify", "headers": headers}
    try:
        await RequestLimitsMiddleware(app, max_bytes=limit)(scope, receive, send)
    except PayloadTooLarge as exc:
        outcome = exc
    return pulled, outcome, sent


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    chunks = [b"x" * 1024] * 100
    pulled, outcome, sent = anyio.run(_drive, 10_000, chunks, [(b"content-length", b"102400")])
    assert pulled == 0 and outcome is None
    assert sent[0]["status"] == 413


def test_a_chunked_body_is_cut_off_just_past_the_limit() -> None:
    chunks = [b"x" * 1024] * 100  # 100 KiB, sent without a Content-Length
    pulled, outcome, _ = anyio.run(_drive, 10 * 1024, chunks, [])
    assert isinstance(outcome, PayloadTooLarge)
    assert pulled == 11  # 10 KiB read, the 11th chunk crosses the limit: the other 89 are never read
    pulled, outcome, _ = anyio.run(_drive, 10 * 1024, chunks[:10], [])
    assert outcome == 10 * 1024  # exactly at the limit is fine
