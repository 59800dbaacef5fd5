"""The images of the answers: generated images as one grid PNG or as base64 PNGs, and RGB overlays as PNG.

PNG encoding is models.image_files'. Small outputs are encoded on the event
loop; large ones (many images, a large ``scale``) in a worker thread, so that
one large answer does not stall every other request.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from typing import TypeVar

import anyio
import numpy as np
from PIL import Image

from models.image_files import encode_png

T = TypeVar("T")

# Work on at most this many pixels runs on the event loop (a 28x28 encode takes tens of microseconds,
# less than the hop to a thread); more goes to a worker thread.
INLINE_PIXELS = 128 * 128


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


def rgb_png(pixels: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (an /explain overlay)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


async def encode_off_loop(fn: Callable[[np.ndarray, int], T], images: np.ndarray, scale: int) -> T:
    """Run an encoder on the event loop for small outputs, in a worker thread for large ones."""
    if images.shape[0] * images.shape[1] * images.shape[2] * scale * scale <= INLINE_PIXELS:
        return fn(images, scale)
    return await anyio.to_thread.run_sync(fn, images, scale)
