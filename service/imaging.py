"""Image decoding for uploads and PNG encoding for answers.

Decoding is models.imaging's, the project's one decoder (the `classify` command
and the detector's training use it too): uploads are untrusted, so the format
is limited to a fixed list, the declared size is checked against the pixel
limit (FGAN_MAX_IMAGE_PIXELS) before any pixel is decoded, and every way a
decoder can fail becomes a 4xx: 415 for bytes in no accepted format, 422 for
anything else wrong with them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import TypeVar

import anyio
import numpy as np
import torch
from PIL import Image

from models import imaging as shared
from service.errors import InvalidInput, UnsupportedMediaType

FORMATS = shared.FORMATS
ACCEPTED_FORMATS = shared.ACCEPTED_FORMATS
_to_gray = shared.to_gray  # the mode conversion, under the name the unit tests know
T = TypeVar("T")


# Work on at most this many pixels runs on the event loop; more goes to a worker thread so that one
# large image does not stall every other request (a 28x28 decode or encode takes tens of microseconds,
# less than the hop to a thread). A small image in a large file (many JPEG scans, padding, metadata)
# is decoded in a thread too: its cost follows the bytes, not the pixels.
INLINE_PIXELS = 128 * 128
INLINE_BYTES = 64 * 1024


def _http_error(exc: shared.ImageDecodeError) -> InvalidInput | UnsupportedMediaType:
    if isinstance(exc, shared.UnsupportedImageFormat):
        return UnsupportedMediaType(str(exc))
    return InvalidInput(str(exc))


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Read an upload's header and check its declared size; no pixel is decoded yet.

    Raises UnsupportedMediaType for data that is not an accepted image format, and InvalidInput
    for an empty upload, a corrupt header, or more pixels than ``max_pixels`` (decompression bombs).
    """
    try:
        return shared.open_image(data, max_pixels=max_pixels)
    except shared.ImageDecodeError as exc:
        raise _http_error(exc) from None


def decode_pixels(img: Image.Image) -> torch.Tensor:
    """Decode an opened image to a (28, 28) uint8 grayscale tensor (InvalidInput if truncated or corrupt)."""
    try:
        return shared.decode_pixels(img)
    except shared.ImageDecodeError as exc:
        raise _http_error(exc) from None


def decode_image(data: bytes, *, max_pixels: int) -> torch.Tensor:
    """An upload -> (28, 28) uint8 grayscale tensor, or the 4xx error that says what is wrong with it."""
    return decode_pixels(open_image(data, max_pixels=max_pixels))


async def decode_upload(data: bytes, *, max_pixels: int) -> torch.Tensor:
    """``decode_image`` for the event loop: large images are decoded in a worker thread."""
    img = open_image(data, max_pixels=max_pixels)
    if img.width * img.height <= INLINE_PIXELS and len(data) <= INLINE_BYTES:
        return decode_pixels(img)
    return await anyio.to_thread.run_sync(decode_pixels, img)


encode_png = shared.encode_png  # (H, W) uint8 -> PNG bytes


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the grid that holds n images: as square as possible, filled row by row."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def tile(images: np.ndarray, scale: int = 1) -> np.ndarray:
    """(N, h, w) uint8 -> one (rows*h*scale, cols*w*scale) image; empty cells are black."""
    n, h, w = images.shape
    if n == 1:
        return upscale(images[0], scale)
    rows, cols = grid_shape(n)
    canvas = np.zeros((rows * h, cols * w), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = images[i]
    return upscale(canvas, scale)


def upscale(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor: each pixel becomes a scale x scale block."""
    if scale == 1:
        return pixels
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def grid_png(images: np.ndarray, scale: int = 1) -> bytes:
    """(N, h, w) uint8 -> one PNG: the images in a grid, each pixel enlarged to scale x scale."""
    return encode_png(tile(images, scale))


def pngs_base64(images: np.ndarray, scale: int = 1) -> list[str]:
    """(N, h, w) uint8 -> one base64-encoded PNG per image."""
    return [base64.b64encode(encode_png(upscale(image, scale))).decode("ascii") for image in images]


async def encode_off_loop(fn: Callable[[np.ndarray, int], T], images: np.ndarray, scale: int) -> T:
    """Run an encoder on the event loop for small outputs, in a worker thread for large ones."""
    if images.shape[0] * images.shape[1] * images.shape[2] * scale * scale <= INLINE_PIXELS:
        return fn(images, scale)
    return await anyio.to_thread.run_sync(fn, images, scale)
