"""The bad-input corpus, made by code: every case is built here from a few valid images, byte by byte.

Each case is one HTTP request and the status it must get (with words its message must hold).
Images that must be accepted carry the pixels they must decode to, so an answer can be
checked, not only its status. Upload cases are made for every route that takes the
/classify form (POST /classify, and POST /explain where the service has it), and for
POST /translate, whose form is the image alone: the same images get the same answers there,
except that an image that decodes to one grey is a blank sketch (422), and the fields it
does not read (label, model) are ignored.

No binary blobs live in the repository: a decompression bomb is a PNG header written
with struct and zlib, a corrupt TIFF is a valid one with one directory entry patched.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image

from models.image_files import decode_image
from service.sketches import BLANK_RANGE
from tests.service.support import sample_pixels

PIXELS = sample_pixels()  # (28, 28) uint8: a bright block on a dark noisy background
LABEL = "8"
MAX_PIXELS = 1024 * 1024  # the service's default FGAN_MAX_IMAGE_PIXELS
MAX_UPLOAD = 1024 * 1024  # the service's default FGAN_MAX_UPLOAD_BYTES
SKETCH_PATHS = frozenset({"/translate"})  # upload routes whose form is the image alone (a sketch)
BLANK = ("the sketch is blank", "no strokes")


@dataclass(frozen=True)
class Case:
    """One request of the corpus and what it must get."""

    id: str
    method: str
    path: str
    status: int
    words: tuple[str, ...] = ()  # each must appear in the error's detail
    files: tuple[tuple[str, tuple[str, bytes, str]], ...] = ()  # multipart file fields (httpx ``files``)
    data: tuple[tuple[str, str], ...] = ()  # multipart text fields (httpx ``data``)
    content: bytes | None = None  # a raw body, instead of files/data
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False  # send ``content`` without a Content-Length
    pixels: np.ndarray | None = field(default=None, compare=False)  # what an accepted image must decode to
    pixel_label: int | None = None  # the label the verdict is computed with, when pixels is set

    def request_kwargs(self) -> dict:
        """Keyword arguments for ``httpx.Client.request``."""
        kwargs: dict = {"headers": dict(self.headers)}
        if self.content is not None:
            content = self.content
            if self.chunked:
                chunks = [content[i : i + 65536] for i in range(0, len(content), 65536)]
                kwargs["content"] = iter(chunks)
            else:
                kwargs["content"] = content
        else:
            if self.files:
                kwargs["files"] = list(self.files)
            if self.data:
                kwargs["data"] = dict(self.data)
        return kwargs


# Image builders ---------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, *, bit_depth: int = 8, color: int = 0) -> bytes:
    """A PNG header declaring width x height, followed by a token of pixel data: a bomb's calling card."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _chunk(b"IEND", b"")


@cache
def zero_png(width: int, height: int) -> bytes:
    """A valid, complete all-black 8-bit grayscale PNG, compressed row by row (12000x12000 is ~140 KB)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame declare width x height, with one LZW code of data."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def bmp_declaring(width: int, height: int) -> bytes:
    """An 8-bit BMP header declaring width x height, with a few bytes of pixels."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, 0, 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + 64, 0, 0, offset) + info + palette + b"\0" * 64


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid 28x28 JPEG whose frame header (SOF0) is patched to declare width x height."""
    data = bytearray(encode(Image.fromarray(PIXELS), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """An extended WebP (VP8X) whose canvas is width x height, holding a 28x28 lossless image."""
    lossless = encode(Image.fromarray(PIXELS).convert("RGB"), "WEBP", lossless=True)
    vp8l = lossless[12:]  # the VP8L chunk, header included
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _tiff_entries(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset of the entry, tag, type) of each entry of a little-endian TIFF's first directory."""
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, at)
        yield at, tag, kind


def tiff_patched(tag: int, *, kind: int | None = None, value: int | None = None, data: bytes | None = None) -> bytes:
    """A TIFF (default: a valid 28x28 grayscale one) with one directory entry's type and/or value replaced."""
    out = bytearray(data if data is not None else encode(Image.fromarray(PIXELS), "TIFF"))
    for at, found, old_kind in _tiff_entries(bytes(out)):
        if found == tag:
            if kind is not None:
                struct.pack_into("<H", out, at + 2, kind)
            if value is not None:
                out[at + 8 : at + 12] = b"\0\0\0\0"
                struct.pack_into("<H" if old_kind == 3 else "<I", out, at + 8, value)  # SHORT or LONG
            return bytes(out)
    raise AssertionError(f"tag {tag} not in the TIFF")


def tiff_declaring(width: int, height: int) -> bytes:
    """A valid 28x28 TIFF whose ImageWidth and ImageLength entries declare width x height."""
    return tiff_patched(257, value=height, data=tiff_patched(256, value=width))


def _rgb(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.stack([pixels] * 3, axis=-1))


def _animated(fmt: str, **params: object) -> bytes:
    frames = [Image.fromarray(PIXELS), Image.fromarray(255 - PIXELS)]
    if fmt == "GIF":
        frames = [frame.convert("P") for frame in frames]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **params)


def _exif_rotated_png() -> bytes:
    """A PNG whose EXIF orientation (6) says: turn it 90 degrees clockwise to display it."""
    stored = np.rot90(PIXELS, k=1)  # stored turned left, so displaying it turned right gives PIXELS
    image = Image.fromarray(np.ascontiguousarray(stored))
    exif = image.getexif()
    exif[0x0112] = 6
    return encode(image, "PNG", exif=exif)


def _palette_with_transparency() -> tuple[bytes, np.ndarray]:
    """A palette PNG whose entry 200 (the bright block) is transparent: the block must come out black."""
    image = Image.fromarray(PIXELS).convert("P")  # identity palette for grayscale input
    expected = np.where(PIXELS == 200, 0, PIXELS).astype(np.uint8)
    return encode(image, "PNG", transparency=200), expected


def _truncated(data: bytes, keep: float) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def _corrupt_idat() -> bytes:
    data = bytearray(encode(Image.fromarray(sample_pixels(5)), "PNG"))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = b"\xff" * 40  # the header stays valid, the compressed pixels do not
    return bytes(data)


def _bad_crc() -> bytes:
    data = bytearray(encode(Image.fromarray(PIXELS), "PNG"))
    end = data.index(b"IDAT") - 4 + 8 + struct.unpack(">I", data[data.index(b"IDAT") - 4 : data.index(b"IDAT")])[0]
    data[end] ^= 0xFF  # first byte of IDAT's CRC
    return bytes(data)


# (name, bytes, status, words, pixels it must decode to or None)
ImageCase = tuple[str, Callable[[], bytes], int, tuple[str, ...], Callable[[], np.ndarray] | None]


def image_cases() -> list[ImageCase]:
    gray = Image.fromarray(PIXELS)
    wide16 = Image.fromarray(PIXELS.astype(np.uint16) * 257)
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[6:22, 8:20, 3] = 255  # white, transparent but for a block
    block = np.zeros((28, 28), dtype=np.uint8)
    block[6:22, 8:20] = 255
    half = np.full((28, 28), 128, dtype=np.uint8)
    bomb = ("too large", "pixels")
    corrupt = ("truncated or corrupt",)
    unsupported = ("not a readable image", "accepted formats", "PNG, JPEG")
    return [
        # Not images at all.
        ("empty", lambda: b"", 422, ("empty",), None),
        ("text", lambda: b"hello, I am a text file\n" * 20, 415, unsupported, None),
        ("html", lambda: b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", 415, (), None),
        ("json", lambda: b'{"image": "iVBORw0KGgo="}', 415, (), None),
        ("svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect/></svg>', 415, (), None),
        ("pdf", lambda: b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n", 415, (), None),
        ("eps", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n", 415, (), None),
        ("gzip", lambda: zlib.compress(b"\0" * 10_000), 415, (), None),
        ("zip-header", lambda: b"PK\x03\x04" + b"\0" * 100, 415, (), None),
        ("png-magic-only", lambda: b"\x89PNG\r\n\x1a\n", 415, unsupported, None),
        ("gif-magic-garbage", lambda: b"GIF89a garbage", 415, (), None),
        # Pillow reads these formats, the service does not accept them.
        ("ico", lambda: encode(gray, "ICO"), 415, unsupported, None),
        ("ppm", lambda: encode(gray, "PPM"), 415, unsupported, None),
        ("tga", lambda: encode(gray, "TGA"), 415, unsupported, None),
        ("pcx", lambda: encode(gray, "PCX"), 415, unsupported, None),
        # Truncated and corrupt.
        ("png-truncated-header", lambda: encode(gray, "PNG")[:20], 422, (), None),
        ("png-truncated", lambda: encode(gray, "PNG")[:60], 422, corrupt, None),
        ("png-corrupt-pixels", _corrupt_idat, 422, corrupt, None),
        ("png-bad-crc", _bad_crc, 200, (), lambda: PIXELS),  # like browsers, Pillow does not check data CRCs
        ("jpeg-truncated", lambda: _truncated(encode(_rgb(PIXELS), "JPEG"), 0.5), 422, ("corrupt",), None),
        ("gif-truncated", lambda: _truncated(encode(gray.convert("P"), "GIF"), 0.6), 422, (), None),
        ("bmp-truncated", lambda: _truncated(encode(gray, "BMP"), 0.5), 422, (), None),
        ("tiff-truncated", lambda: _truncated(encode(gray, "TIFF"), 0.5), 422, (), None),
        ("webp-truncated", lambda: _truncated(encode(_rgb(PIXELS), "WEBP"), 0.6), 422, (), None),
        # Found by fuzzing: a StripOffsets entry of the wrong type made Pillow raise TypeError (a 500).
        ("tiff-strip-offsets-rational", lambda: tiff_patched(273, kind=5), 422, (), None),
        ("tiff-strip-offsets-float", lambda: tiff_patched(273, kind=11), 422, (), None),
        ("tiff-strip-offsets-ascii", lambda: tiff_patched(273, kind=2), 422, (), None),
        ("tiff-strip-offsets-huge", lambda: tiff_patched(273, value=0x7FFFFFFF), 422, (), None),
        # Decompression bombs: small files declaring huge images, refused from the header.
        ("png-bomb-50000", lambda: png_declaring(50_000, 50_000), 422, bomb, None),
        ("png-bomb-16-bit-rgba", lambda: png_declaring(30_000, 30_000, bit_depth=16, color=6), 422, bomb, None),
        ("png-over-limit-2000", lambda: png_declaring(2000, 2000), 422, ("2000x2000", "1048576"), None),
        ("png-valid-zeros-12000", lambda: zero_png(12_000, 12_000), 422, ("12000x12000",), None),
        ("gif-bomb-65535", lambda: gif_declaring(65_535, 65_535), 422, bomb, None),
        ("gif-over-limit-2000", lambda: gif_declaring(2000, 2000), 422, ("2000x2000",), None),
        ("bmp-bomb-30000", lambda: bmp_declaring(30_000, 30_000), 422, bomb, None),
        ("bmp-over-limit-2000", lambda: bmp_declaring(2000, 2000), 422, ("2000x2000",), None),
        ("jpeg-bomb-60000", lambda: jpeg_declaring(60_000, 60_000), 422, bomb, None),
        ("jpeg-over-limit-2000", lambda: jpeg_declaring(2000, 2000), 422, ("2000x2000",), None),
        ("tiff-bomb-40000", lambda: tiff_declaring(40_000, 40_000), 422, bomb, None),
        ("webp-canvas-16384", lambda: webp_declaring(16_384, 16_384), 422, bomb, None),
        # Extreme but acceptable sizes.
        (
            "png-1x1",
            lambda: encode(Image.new("L", (1, 1), 77), "PNG"),
            200,
            (),
            lambda: np.full((28, 28), 77, np.uint8),
        ),
        ("png-5000x3", lambda: encode(Image.new("L", (5000, 3), 200), "PNG"), 200, (), None),
        ("png-3x5000", lambda: encode(Image.new("L", (3, 5000), 200), "PNG"), 200, (), None),
        ("png-at-pixel-limit", lambda: zero_png(1024, 1024), 200, (), lambda: np.zeros((28, 28), np.uint8)),
        ("png-one-over-limit", lambda: zero_png(1025, 1024), 422, ("1025x1024",), None),
        ("png-one-row-at-limit", lambda: zero_png(MAX_PIXELS, 1), 200, (), None),
        # Every accepted format, in odd modes; lossless ones must decode to known pixels.
        ("png-rgba", lambda: encode(Image.fromarray(rgba), "PNG"), 200, (), lambda: block),
        (
            "png-rgba-half",
            lambda: encode(Image.new("RGBA", (28, 28), (255, 255, 255, 128)), "PNG"),
            200,
            (),
            lambda: half,
        ),
        ("png-la", lambda: encode(gray.convert("LA"), "PNG"), 200, (), lambda: PIXELS),
        ("png-16-bit", lambda: encode(wide16, "PNG"), 200, (), lambda: PIXELS),
        ("png-palette", lambda: encode(gray.convert("P"), "PNG"), 200, (), lambda: PIXELS),
        (
            "png-palette-transparent",
            lambda: _palette_with_transparency()[0],
            200,
            (),
            lambda: _palette_with_transparency()[1],
        ),
        (
            "png-1-bit",
            lambda: encode(Image.fromarray(PIXELS > 100), "PNG"),
            200,
            (),
            lambda: np.where(PIXELS > 100, 255, 0).astype(np.uint8),
        ),
        ("png-animated", lambda: _animated("PNG"), 200, (), lambda: PIXELS),
        ("png-exif-rotated", _exif_rotated_png, 200, (), lambda: PIXELS),
        ("png-interlaced-rgb", lambda: encode(_rgb(PIXELS), "PNG", interlace=1), 200, (), None),
        ("gif", lambda: encode(gray.convert("P"), "GIF"), 200, (), lambda: PIXELS),
        ("gif-animated", lambda: _animated("GIF"), 200, (), lambda: PIXELS),
        ("bmp-rgb", lambda: encode(_rgb(PIXELS), "BMP"), 200, (), lambda: PIXELS),
        ("bmp-1-bit", lambda: encode(Image.fromarray(PIXELS > 100).convert("1"), "BMP"), 200, (), None),
        ("tiff-gray", lambda: encode(gray, "TIFF"), 200, (), lambda: PIXELS),
        (
            "tiff-16-bit-deflate",
            lambda: encode(wide16, "TIFF", compression="tiff_adobe_deflate"),
            200,
            (),
            lambda: PIXELS,
        ),
        (
            "tiff-32-bit-int",
            lambda: encode(Image.fromarray(PIXELS.astype(np.int32) * 257), "TIFF"),
            200,
            (),
            lambda: PIXELS,
        ),
        ("tiff-float", lambda: encode(Image.fromarray(PIXELS.astype(np.float32)), "TIFF"), 200, (), lambda: PIXELS),
        (
            "tiff-float-nan",
            lambda: encode(Image.fromarray(np.full((28, 28), np.nan, np.float32)), "TIFF"),
            200,
            (),
            lambda: np.zeros((28, 28), np.uint8),
        ),
        ("tiff-cmyk-lzw", lambda: encode(_rgb(PIXELS).convert("CMYK"), "TIFF", compression="tiff_lzw"), 200, (), None),
        ("tiff-multipage", lambda: _animated("TIFF"), 200, (), lambda: PIXELS),
        ("jpeg-gray", lambda: encode(gray, "JPEG", quality=95), 200, (), None),
        ("jpeg-progressive", lambda: encode(_rgb(PIXELS), "JPEG", progressive=True), 200, (), None),
        ("jpeg-cmyk", lambda: encode(_rgb(PIXELS).convert("CMYK"), "JPEG"), 200, (), None),
        ("webp-lossless", lambda: encode(_rgb(PIXELS), "WEBP", lossless=True), 200, (), lambda: PIXELS),
        ("webp-lossy-alpha", lambda: encode(Image.fromarray(rgba), "WEBP", quality=80), 200, (), None),
        ("webp-animated", lambda: _animated("WEBP", lossless=True), 200, (), lambda: PIXELS),
    ]


def _multipart(parts: list[tuple[str, bytes]], boundary: str = "robustness0boundary") -> tuple[bytes, str]:
    """A multipart/form-data body from (Content-Disposition parameters, value) pairs."""
    body = b""
    for disposition, value in parts:
        body += f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def is_blank(data: bytes) -> bool:
    """Whether an accepted image decodes (as every upload does) to a blank sketch: fewer than BLANK_RANGE greys."""
    pixels = decode_image(data, max_pixels=MAX_PIXELS)
    return int(pixels.max()) - int(pixels.min()) < BLANK_RANGE


def upload_cases(path: str) -> list[Case]:
    """Every case for a route that takes the /classify form (or, for SKETCH_PATHS, its image alone)."""
    good = encode(Image.fromarray(PIXELS), "PNG")
    sketch = path in SKETCH_PATHS
    # A field the route reads (/classify's label and model), or one a sketch route ignores: then a 200.
    field_status = (lambda status: 200) if sketch else (lambda status: status)
    cases = []
    for name, build, status, words, pixels in image_cases():
        data = build()
        if sketch and status == 200 and is_blank(data):
            status, words, pixels = 422, BLANK, None
        cases.append(
            Case(
                f"{path}:image:{name}",
                "POST",
                path,
                status,
                words,
                files=(("image", ("x.png", data, "application/octet-stream")),),
                data=(("label", LABEL),),
                pixels=None if pixels is None else pixels(),
                pixel_label=int(LABEL),
            )
        )

    def form(case_id: str, status: int, words: tuple[str, ...] = (), *, image: bytes = good, **fields: str) -> Case:
        return Case(
            f"{path}:{case_id}",
            "POST",
            path,
            status,
            words,
            files=(("image", ("x.png", image, "image/png")),),
            data=tuple(fields.items()),
        )

    def field(case_id: str, status: int, words: tuple[str, ...] = (), **fields: str) -> Case:
        """A case about a form field: a sketch route ignores it (200)."""
        return form(case_id, field_status(status), () if sketch else words, **fields)

    # Labels.
    cases += [
        field("label-out-of-range", 422, ("label id 10", "0-9"), label="10"),
        field("label-negative", 422, ("out of range",), label="-1"),
        field("label-huge-number", 422, ("unknown label",), label="9" * 200),
        field("label-over-256-bytes", 422, ("over 256 bytes",), label="7" * 300),
        field("label-non-numeric", 422, ("unknown label", "Ankle boot"), label="hat"),
        field("label-float", 422, ("unknown label",), label="1.5"),
        field("label-hex", 422, ("unknown label",), label="0x3"),
        field("label-empty", 422, ("empty",), label=""),
        field("label-blank", 422, ("empty",), label="   "),
        field("label-nul", 422, (), label="\0"),
        field("label-by-name", 200, label="Ankle boot"),
        field("label-plus-sign", 200, label="+3"),
        field("model-unknown", 422, ("oracle",), label=LABEL, model="oracle"),
    ]
    # Form structure.
    body, ctype = _multipart([('name="image"; filename="x.png"', good)] + [(f'name="f{i}"', b"x") for i in range(20)])
    cases.append(
        Case(
            f"{path}:too-many-fields",
            "POST",
            path,
            422,
            ("more than 16 parts",),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart([(f'name="f{i}"', b"x") for i in range(5000)])
    cases.append(
        Case(
            f"{path}:thousands-of-fields",
            "POST",
            path,
            422,
            ("more than 16 parts",),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart(
        [('name="image"; filename="a.png"', good), ('name="image"; filename="b.png"', good), ('name="label"', b"8")]
    )
    cases.append(
        Case(
            f"{path}:two-images",
            "POST",
            path,
            422,
            ("2 'image' fields",),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart([('name="image"', good), ('name="label"', b"8"), ('name="label"', b"3")])
    cases.append(
        Case(
            f"{path}:two-labels",
            "POST",
            path,
            field_status(422),
            () if sketch else ("2 'label' fields",),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart([('name="picture"; filename="x.png"', good), ('name="label"', b"8")])
    cases.append(
        Case(
            f"{path}:no-image-field",
            "POST",
            path,
            422,
            ("no 'image' field", "picture"),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart([('name="image"', good), ('name="label"', b"\xff\xfe8")])
    cases.append(
        Case(
            f"{path}:label-not-utf8",
            "POST",
            path,
            field_status(422),
            () if sketch else ("not UTF-8",),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart([('name="image"; filename="' + "A" * 100_000 + '.png"', good), ('name="label"', b"8")])
    cases.append(
        Case(
            f"{path}:filename-100k",
            "POST",
            path,
            400,
            ("header size",),
            content=body,
            headers=(("content-type", ctype),),
        )
    )
    body, ctype = _multipart([('name="image"; filename="../../../../etc/cron.d/x"', good), ('name="label"', b"8")])
    cases.append(
        Case(f"{path}:filename-traversal", "POST", path, 200, content=body, headers=(("content-type", ctype),))
    )
    body, ctype = _multipart([('name="image"; filename="x.svg"', good), ('name="label"', b"8")])
    cases.append(Case(f"{path}:png-named-svg", "POST", path, 200, content=body, headers=(("content-type", ctype),)))
    # Encodings and sizes of the body.
    body, _ = _multipart([('name="image"', good), ('name="label"', b"8")])
    cases += [
        Case(f"{path}:no-content-type", "POST", path, 415, ("multipart/form-data",), content=body),
        Case(
            f"{path}:json-body",
            "POST",
            path,
            415,
            ("multipart/form-data",),
            content=b'{"label": 8}',
            headers=(("content-type", "application/json"),),
        ),
        Case(
            f"{path}:urlencoded",
            "POST",
            path,
            415,
            (),
            content=b"image=x&label=8",
            headers=(("content-type", "application/x-www-form-urlencoded"),),
        ),
        Case(f"{path}:raw-png", "POST", path, 415, (), content=good, headers=(("content-type", "image/png"),)),
        Case(
            f"{path}:no-boundary",
            "POST",
            path,
            400,
            ("boundary",),
            content=body,
            headers=(("content-type", "multipart/form-data"),),
        ),
        Case(
            f"{path}:wrong-boundary",
            "POST",
            path,
            400,
            (),
            content=body,
            headers=(("content-type", "multipart/form-data; boundary=other"),),
        ),
        Case(
            f"{path}:boundary-too-long",
            "POST",
            path,
            400,
            (),
            content=body,
            headers=(("content-type", "multipart/form-data; boundary=" + "b" * 5000),),
        ),
        Case(
            f"{path}:no-closing-boundary",
            "POST",
            path,
            400,
            ("incomplete",),
            content=body[: -len("--robustness0boundary--\r\n")],
            headers=(("content-type", "multipart/form-data; boundary=robustness0boundary"),),
        ),
        Case(
            f"{path}:empty-body",
            "POST",
            path,
            400,
            (),
            content=b"",
            headers=(("content-type", "multipart/form-data; boundary=x"),),
        ),
        Case(
            f"{path}:eight-mebibytes",
            "POST",
            path,
            413,
            ("upload limit",),
            files=(("image", ("big.png", good + b"\0" * (8 << 20), "image/png")),),
            data=(("label", LABEL),),
        ),
        Case(
            f"{path}:eight-mebibytes-chunked",
            "POST",
            path,
            413,
            ("upload limit",),
            content=_multipart([('name="image"', good + b"\0" * (8 << 20))])[0],
            headers=(("content-type", "multipart/form-data; boundary=robustness0boundary"),),
            chunked=True,
        ),
        Case(
            f"{path}:just-under-the-limit",
            "POST",
            path,
            200,
            content=_multipart([('name="image"', good + b"\0" * (MAX_UPLOAD - 1024)), ('name="label"', b"8")])[0],
            headers=(("content-type", "multipart/form-data; boundary=robustness0boundary"),),
        ),
    ]
    if sketch:
        cases += sketch_cases(path)
    return cases


def sketch_cases(path: str) -> list[Case]:
    """What only a sketch route has: blank drawings, its options."""
    sketch = np.zeros((28, 28), dtype=np.uint8)
    sketch[4:24, 6] = sketch[4:24, 21] = sketch[4, 6:22] = sketch[23, 6:22] = 255  # a light outline on black
    good = encode(Image.fromarray(sketch), "PNG")

    def post(case_id: str, status: int, words: tuple[str, ...] = (), *, image: bytes = good, query: str = "") -> Case:
        files = (("image", ("sketch.png", image, "image/png")),)
        return Case(f"{path}:{case_id}", "POST", f"{path}{query}", status, words, files=files)

    white = Image.new("L", (28, 28), 255)
    rgba_clear = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    return [
        post("sketch-outline", 200),
        post("sketch-dark-on-light", 200, image=encode(Image.fromarray(255 - sketch), "PNG")),
        post("sketch-canvas-224-jpeg", 200, image=encode(Image.fromarray(255 - sketch).resize((224, 224)), "JPEG")),
        post("blank-white", 422, BLANK, image=encode(white, "PNG")),
        post("blank-white-jpeg", 422, BLANK, image=encode(white.convert("RGB").resize((640, 480)), "JPEG")),
        post("blank-black-canvas", 422, BLANK, image=encode(Image.new("L", (224, 224), 0), "PNG")),
        post("blank-grey-gif", 422, BLANK, image=encode(Image.new("P", (28, 28), 7), "GIF")),
        post("blank-transparent", 422, BLANK, image=encode(rgba_clear, "PNG")),
        post("scale-16", 200, query="?scale=16"),
        post("scale-0", 422, ("'scale'", "1 to 16"), query="?scale=0"),
        post("scale-17", 422, ("1 to 16",), query="?scale=17"),
        post("scale-word", 422, ("1 to 16",), query="?scale=big"),
        post("scale-twice", 200, query="?scale=2&scale=3"),
        post("invert-true", 200, query="?invert=true"),
        post("invert-maybe", 422, ("'auto', 'true' or 'false'",), query="?invert=maybe"),
        post("invert-empty", 422, ("'auto', 'true' or 'false'",), query="?invert="),
        Case(f"{path}:get", "GET", path, 405, ("allowed: POST",)),
    ]


def query_cases() -> list[Case]:
    """GET /generate with every kind of bad parameter, and the other routes with wrong methods and paths."""

    def get(case_id: str, query: str, status: int, words: tuple[str, ...] = ()) -> Case:
        return Case(f"/generate:{case_id}", "GET", f"/generate?{query}", status, words)

    return [
        get("label-10", "label=10", 422, ("label id 10",)),
        get("label-negative", "label=-1", 422, ()),
        get("label-word", "label=hat", 422, ("unknown label",)),
        get("label-huge", "label=" + "9" * 4000, 422, ("unknown label",)),
        get("label-empty", "label=", 422, ("empty",)),
        get("label-nul", "label=%00", 422, ()),
        get("label-bad-utf8", "label=%ff%fe", 422, ()),
        get("label-by-name", "label=ankle%20boot", 200),
        get("seed-negative", "seed=-1", 422, ("seed",)),
        get("seed-2-32", "seed=4294967296", 422, ("4294967295",)),
        get("seed-huge", "seed=" + "9" * 400, 422, ("seed",)),
        get("seed-float", "seed=1.5", 422, ("seed",)),
        get("n-0", "n=0", 422, ("1 to 100",)),
        get("n-101", "n=101", 422, ("1 to 100",)),
        get("n-word", "n=many", 422, ("1 to 100",)),
        get("scale-0", "scale=0", 422, ("1 to 16",)),
        get("scale-17", "scale=17", 422, ("1 to 16",)),
        get("format-gif", "format=gif", 422, ("'png' or 'json'",)),
        get("largest", "n=100&scale=16&seed=1", 200),
        get("largest-json", "n=100&scale=16&seed=1&format=json", 200),
        Case("/generate:post", "POST", "/generate", 405, ("allowed: GET",)),
        Case("/classify:get", "GET", "/classify", 405, ("allowed: POST",)),
        Case("/healthz:delete", "DELETE", "/healthz", 405),
        Case("unknown-route", "GET", "/admin", 404),
        Case("traversal", "GET", "/../../etc/passwd", 404),
        Case("encoded-traversal", "GET", "/%2e%2e/%2e%2e/etc/passwd", 404),
        Case("static-traversal", "GET", "/static/../../service/settings.py", 404),
        Case("static-encoded-traversal", "GET", "/static/%2e%2e/%2e%2e/service/settings.py", 404),
        Case("static-missing", "GET", "/static/nothing.js", 404),
    ]


def page_cases() -> list[Case]:
    """The web page at / and its files (when the service has them): served, and nothing else under /static."""
    return [
        Case("page:index", "GET", "/", 200),
        Case("page:index-query", "GET", "/?label=<script>", 200),
        Case("page:post", "POST", "/", 405, content=b"x"),
        Case("page:delete", "DELETE", "/", 405),
        Case("page:script", "GET", "/static/app.js", 200),
        Case("page:static-dir", "GET", "/static/", 404),
        Case("page:static-post", "POST", "/static/app.js", 405),
    ]


def all_cases(paths: list[str], page: bool = False) -> list[Case]:
    """The whole corpus for a service whose upload routes are ``paths`` (and which serves the page at /)."""
    return [case for path in paths for case in upload_cases(path)] + query_cases() + (page_cases() if page else [])
