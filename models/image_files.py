"""Image files in and out: any accepted image file -> what the networks judge (28x28 8-bit grayscale), and
a grayscale array -> PNG bytes.

The one decoder of the project, shared by the service's uploads, the
`classify` command and the detector's training augmentations (so a training
image goes through exactly the decoding that a served upload does).

The bytes are untrusted. The format must be one of ``FORMATS`` (decided by
content, never by a file name); the size the header declares is checked
against ``max_pixels`` before any pixel is decoded (a small file can declare a
huge image); and every way a decoder can fail on bad data becomes an
``ImageDecodeError`` whose message says what is wrong and what is accepted.

Conversion: the first frame of an animation; EXIF orientation honoured;
transparency (alpha, or a palette's or colour key's transparent entry)
composited on black, Fashion-MNIST's background; colour reduced to luma
(ITU-R 601, so a grey RGB pixel keeps its value); 16-bit scaled to 8 bits;
float read as 0-255. Any other size is resized to 28x28, ignoring the aspect
ratio: area averaging when shrinking (which exactly undoes an integer
nearest-neighbour upscale such as the service's ``scale`` option), bilinear
when enlarging.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SIZE = 28
MAX_PIXELS = 4096 * 4096  # default limit on width x height; the service passes its own setting
# Pillow's names of the accepted formats; GIF and WebP animations give their first frame.
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
ACCEPTED_FORMATS = "PNG, JPEG, GIF (first frame), BMP, TIFF or WebP"
# Their media types, as an upload may declare them (the format is still decided by the content).
MEDIA_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
}

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What Pillow's decoders are known to raise on broken data. Anything else they raise on these
# bytes is treated the same way (the file is at fault, whatever the exception), and logged.
_KNOWN_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

log = logging.getLogger(__name__)


class ImageDecodeError(ValueError):
    """The bytes are not a usable image; the message says why and what is accepted."""


class UnsupportedImageFormat(ImageDecodeError):
    """The bytes are not an image in any accepted format (text, SVG, PDF, …)."""


class ImageTooLarge(ImageDecodeError):
    """The image declares more pixels than allowed (a decompression bomb, or just too big)."""


def open_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read the header and check the declared size; no pixel is decoded yet.

    Raises UnsupportedImageFormat for bytes in no accepted format, ImageTooLarge for more than
    ``max_pixels`` pixels, and ImageDecodeError for an empty file or a corrupt header.
    """
    if not data:
        raise ImageDecodeError(f"the image file is empty (0 bytes); send a {ACCEPTED_FORMATS} file")
    try:
        # Reads the header only; pixels are decoded by load() in decode_pixels.
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        # Pillow's own limit (far above any max_pixels the service allows) struck first.
        raise ImageTooLarge(
            f"the image is too large: its header declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels; "
            f"accepted: 1 to {max_pixels} pixels"
        ) from None
    except Image.UnidentifiedImageError:
        raise UnsupportedImageFormat(
            f"the file is not a readable image (not an image file that Pillow can read); "
            f"accepted formats: {ACCEPTED_FORMATS}"
        ) from None
    except Exception as exc:
        _log_unexpected(exc, "reading the header")
        raise ImageDecodeError(
            f"the image header is corrupt ({_reason(exc)}); send a valid {ACCEPTED_FORMATS} file"
        ) from None
    width, height = img.size
    if width < 1 or height < 1:
        img.close()
        raise ImageDecodeError(f"the image declares no pixels ({width}x{height}); send a valid {ACCEPTED_FORMATS} file")
    if width * height > max_pixels:
        img.close()
        side = math.isqrt(max_pixels)
        raise ImageTooLarge(
            f"the image is too large: {width}x{height} = {width * height} pixels; accepted: 1 to {max_pixels} "
            f"pixels (e.g. {side}x{side}); it is resized to 28x28 anyway, so send a smaller one"
        )
    return img


def decode_pixels(img: Image.Image) -> torch.Tensor:
    """Decode an image from ``open_image`` to a (28, 28) uint8 grayscale tensor, and close it.

    Raises ImageDecodeError if the pixel data is truncated or corrupt.
    """
    with img:
        try:
            img.load()  # the first frame
            gray = to_gray(ImageOps.exif_transpose(img) or img)
            if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
                shrinking = gray.width > IMAGE_SIZE or gray.height > IMAGE_SIZE
                # Area averaging when shrinking (no aliasing, no ringing); bilinear when enlarging.
                resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
                gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), resample)
            pixels = np.array(gray, dtype=np.uint8)  # a copy: torch gets memory it owns
        except Image.DecompressionBombError as exc:  # a later frame or tile declaring more
            raise ImageTooLarge(f"the image is too large: {_reason(exc)}") from None
        except Exception as exc:
            _log_unexpected(exc, "decoding the pixels")
            raise ImageDecodeError(
                f"the {img.format} image is truncated or corrupt ({_reason(exc)}); send a complete file"
            ) from None
    return torch.from_numpy(pixels)  # (28, 28) uint8


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Image file bytes -> (28, 28) uint8 grayscale tensor, or ImageDecodeError saying what is wrong."""
    return decode_pixels(open_image(data, max_pixels=max_pixels))


def to_gray(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit grayscale ("L"); transparency is composited on black."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them.
        return _from_float(np.asarray(img, dtype=np.float64) / 257.0)
    if mode == "F":
        # Float images have no agreed range: read them as 0-255 like 8-bit data.
        return _from_float(np.asarray(img, dtype=np.float64))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("L")
    if mode in ("L", "1", "P", "RGB", "CMYK", "YCbCr"):
        return img.convert("L")
    return img.convert("RGB").convert("L")  # LAB, HSV and other rare modes


def _from_float(values: np.ndarray) -> Image.Image:
    """(H, W) float -> mode "L": rounded and clipped to 0-255; NaN is black, infinities are clipped."""
    values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:120] + "…"


def _log_unexpected(exc: BaseException, doing: str) -> None:
    # Pillow's plugins are parsers of untrusted bytes whose failures are not all documented;
    # an odd exception type still means a bad file, but is worth a line for whoever reads the logs.
    if not isinstance(exc, _KNOWN_DECODE_ERRORS):
        log.warning("unexpected %s from Pillow while %s: %s", type(exc).__name__, doing, _reason(exc))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = _png_chunk(b"IEND", b"")


def encode_png(pixels: np.ndarray | torch.Tensor) -> bytes:
    """(H, W) uint8 -> PNG bytes (8-bit grayscale, no interlacing). Deterministic for the same pixels.

    Written here rather than through Pillow: for the service's 28x28 answers Pillow's save takes
    twice as long (36 against 19 microseconds an image, most of the 19 being zlib; measured by
    ``python bench/components.py``), a real share of a /generate request. Every row is stored
    unfiltered and the whole is compressed at zlib's default level; for the small images served
    this is within 10% of Pillow's adaptive filtering in size (larger only for big nearest-neighbour
    enlargements: 220 against 120 KB for 100 images at scale 16).
    """
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.cpu().numpy()
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 array, got {pixels.ndim}-D {pixels.dtype}")
    height, width = pixels.shape
    if not (height and width):
        raise ValueError("an image needs at least one pixel")
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # each row: filter type 0 (none), then its pixels
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale, deflate, no interlace
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows.data)) + _PNG_END
