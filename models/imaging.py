"""Decoding an uploaded image file into what the networks judge: 28x28 8-bit grayscale.

Shared by the `classify` command, the detector's training augmentations (so a
training image goes through exactly the decoding that a served upload does) and
the service. Any format Pillow reads is accepted; transparency is composited on
black (Fashion-MNIST's background); colour is reduced to luma (ITU-R 601, which
maps a grey RGB pixel to the same grey); EXIF orientation is honoured; 16-bit
and float images are scaled to 8 bits; any other size is resized to 28x28 (area
averaging when shrinking, which exactly undoes an integer nearest-neighbour
upscale such as the service's ``scale`` option; bilinear when enlarging).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 28
MAX_PIXELS = 4096 * 4096  # larger uploads are refused before their pixels are decoded


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can read, or the image is unusable."""


def _to_grayscale(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> mode "L", with transparency composited on black."""
    if im.mode == "P" or (im.mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")  # a palette or colour key may carry transparency
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(im, dtype=np.float64)  # (H, W)
        if im.mode.startswith("I;16"):
            values = values / 257.0  # 0..65535 -> 0..255
        elif im.mode == "F" and values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0  # float images in 0..1
        elif im.mode == "I" and values.size and values.max() > 255:
            values = values / 257.0  # 32-bit container holding 16-bit data
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))  # mode "L"
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("L")
    return im.convert("L")  # 1, L, RGB, CMYK, YCbCr, LAB, HSV


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Image file bytes (PNG, JPEG, WebP, BMP, GIF, TIFF, ...) -> uint8 tensor (28, 28).

    The first frame of an animation is used. Raises ImageDecodeError with a
    message fit to show a user for anything that is not a usable image.
    """
    if not data:
        raise ImageDecodeError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width < 1 or height < 1:
                    raise ImageDecodeError(f"the image has no pixels ({width}x{height})")
                if width * height > max_pixels:
                    raise ImageDecodeError(f"the image is too large ({width}x{height}; at most {max_pixels} pixels)")
                im.seek(0)
                im.load()
                im = ImageOps.exif_transpose(im)
                gray = _to_grayscale(im)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "not an image file Pillow can read (expected PNG, JPEG, WebP, BMP, GIF, TIFF, …)"
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageDecodeError("the image is too large to decode safely") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # truncated or corrupt data
        raise ImageDecodeError(f"the image data is corrupt or truncated ({exc})") from None
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        shrink = gray.width >= IMAGE_SIZE and gray.height >= IMAGE_SIZE
        resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
        gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), resample)
    return torch.from_numpy(np.array(gray, dtype=np.uint8))  # (28, 28)


def encode_png(image: torch.Tensor) -> bytes:
    """uint8 (28, 28) -> PNG bytes (8-bit grayscale), as the service serves it."""
    buf = io.BytesIO()
    Image.fromarray(image.cpu().numpy().astype(np.uint8)).save(buf, format="PNG")  # 2-D uint8: mode "L"
    return buf.getvalue()
