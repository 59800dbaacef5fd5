"""Image decoding for uploads and PNG encoding for answers.

Uploads are untrusted: the format is limited to a fixed list, the declared size
is checked against the pixel limit before any pixel is decoded (a small file
can declare a huge image), and every way a decoder can fail becomes a 4xx.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from collections.abc import Callable
from typing import TypeVar

import anyio
import numpy as np
import torch
from PIL import Image, ImageOps

from models.networks import IMAGE_SIZE
from service.errors import InvalidInput, UnsupportedMediaType

# Pillow's names of the formats accepted for upload; GIF and WebP animations give their first frame.
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
ACCEPTED_FORMATS = "PNG, JPEG, GIF (first frame), BMP, TIFF or WebP"

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What a broken file can make Pillow's decoders raise, beyond OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
T = TypeVar("T")


# Work on at most this many pixels runs on the event loop; more goes to a worker thread so that one
# large image does not stall every other request (a 28x28 decode or encode takes tens of microseconds,
# less than the hop to a thread).
INLINE_PIXELS = 128 * 128


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Read an upload's header and check its declared size; no pixel is decoded yet.

    Raises UnsupportedMediaType for data that is not an accepted image format, and InvalidInput
    for an empty upload, a corrupt header, or more pixels than ``max_pixels`` (decompression bombs).
    """
    if not data:
        raise InvalidInput(f"the image file is empty; send a {ACCEPTED_FORMATS} file")
    try:
        # Image.open reads the header only; pixels are decoded by load() in decode_pixels.
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"the image declares too many pixels ({_reason(exc)}); limit: {max_pixels}") from None
    except Image.UnidentifiedImageError:
        raise UnsupportedMediaType(
            f"the upload is not a readable image; accepted formats: {ACCEPTED_FORMATS}"
        ) from None
    except _DECODE_ERRORS as exc:
        raise InvalidInput(
            f"the image header is corrupt ({_reason(exc)}); send a valid {ACCEPTED_FORMATS} file"
        ) from None
    width, height = img.size
    if width < 1 or height < 1 or width * height > max_pixels:
        img.close()
        side = math.isqrt(max_pixels)
        raise InvalidInput(
            f"the image is {width}x{height} = {width * height} pixels; accepted: 1 to {max_pixels} pixels "
            f"(e.g. {side}x{side}); it is resized to 28x28 anyway, so send a smaller one"
        )
    return img


def decode_pixels(img: Image.Image) -> torch.Tensor:
    """Decode an opened image to a (28, 28) uint8 grayscale tensor (InvalidInput if truncated or corrupt)."""
    with img:
        try:
            img.load()
            gray = _to_gray(ImageOps.exif_transpose(img) or img)
            if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
                shrinking = gray.width > IMAGE_SIZE or gray.height > IMAGE_SIZE
                # Area averaging when shrinking (no aliasing, no ringing); bilinear when enlarging.
                resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
                gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), resample)
            pixels = np.array(gray, dtype=np.uint8)  # a copy: torch gets memory it owns
        except Image.DecompressionBombError as exc:
            raise InvalidInput(f"the image declares too many pixels ({_reason(exc)})") from None
        except _DECODE_ERRORS as exc:
            raise InvalidInput(
                f"the {img.format} image is truncated or corrupt ({_reason(exc)}); send a complete file"
            ) from None
    return torch.from_numpy(pixels)  # (28, 28) uint8


def decode_image(data: bytes, *, max_pixels: int) -> torch.Tensor:
    """An upload -> (28, 28) uint8 grayscale tensor, or the 4xx error that says what is wrong with it."""
    return decode_pixels(open_image(data, max_pixels=max_pixels))


async def decode_upload(data: bytes, *, max_pixels: int) -> torch.Tensor:
    """``decode_image`` for the event loop: large images are decoded in a worker thread."""
    img = open_image(data, max_pixels=max_pixels)
    if img.width * img.height <= INLINE_PIXELS:
        return decode_pixels(img)
    return await anyio.to_thread.run_sync(decode_pixels, img)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:120] + "…"


def _to_gray(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit grayscale ("L"); transparency is composited on black."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them.
        wide = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":
        # Float images have no agreed range: read them as 0-255 like 8-bit data.
        return Image.fromarray(np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("L")
    if mode in ("L", "1", "P", "RGB", "CMYK", "YCbCr"):
        return img.convert("L")
    return img.convert("RGB").convert("L")  # LAB, HSV and other rare modes


def encode_png(pixels: np.ndarray) -> bytes:
    """(H, W) uint8 -> PNG bytes (8-bit grayscale). Deterministic for the same pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


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
