"""Reading request inputs: labels, model names, the multipart form of /classify and /explain, and the image.

The form is parsed here with python-multipart's streaming parser into bytes in
memory (the body is already capped by the upload limit), instead of through
Starlette's ``request.form()``: no spooled temporary files, no thread hop per
chunk, and errors that say exactly which field is wrong.

The image is decoded by models.image_files, the project's one decoder: uploads
are untrusted, so the format is limited to a fixed list, the declared size is
checked against the pixel limit (FGAN_MAX_IMAGE_PIXELS) before any pixel is
decoded, and every way a decoder can fail becomes a 4xx: 415 for bytes in no
accepted format, 422 for anything else wrong with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import torch
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

import models
from models import image_files
from models.labels import accepted as accepted_labels
from service.errors import BadRequest, InvalidInput, ServiceError, UnsupportedMediaType

CLASSIFY_FIELDS = ("image", "label", "model")
_MAX_PARTS = 16
_MAX_TEXT_FIELD = 256  # bytes in a text field (label, model)
# A small image in a small file is decoded on the event loop (tens of microseconds, less than the hop to a
# thread); a larger one in a worker thread, so that it does not stall every other request. A small image in
# a large file (many JPEG scans, padding, metadata) goes to a thread too: its cost follows the bytes.
INLINE_PIXELS = 128 * 128
INLINE_BYTES = 64 * 1024


def parse_label(value: str | None) -> int | None:
    """A label id or class name -> the class id (None stays None); 422 listing the labels otherwise."""
    if value is None:
        return None
    if not value.strip():
        raise InvalidInput(f"the label is empty; accepted: {accepted_labels()}")
    try:
        return models.parse_label(value)
    except models.UnknownLabelError as exc:
        raise InvalidInput(str(exc)) from None


def pick_model(query: str | None, field: str | None) -> str | None:
    """The model named by the query parameter or the form field (422 if they disagree).

    A blank value means "the default", in the query as in the form (``?model=`` is not a model name).
    """
    query = query.strip() if query and query.strip() else None
    field = field.strip() if field and field.strip() else None
    if query and field and query.lower() != field.lower():
        raise InvalidInput(f"model given twice with different values ({query!r}, {field!r}); send it once")
    return field or query


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class ClassifyForm:
    """The fields of a /classify or /explain request."""

    image: bytes
    label: str | None
    model: str | None


async def read_multipart(request: Request) -> list[_Part]:
    """Parse a multipart/form-data body into its parts (415 for another content type, 400 if malformed)."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        got = content_type.decode("latin-1") or "no Content-Type"
        raise UnsupportedMediaType(
            f"expected multipart/form-data with a file field 'image' (got {got}); "
            "e.g. curl -F image=@x.png -F label=8 …/classify"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("the multipart/form-data Content-Type has no boundary parameter")

    parts: list[_Part] = []
    current = _Part()
    header_name = bytearray()
    header_value = bytearray()
    finished = False

    def on_part_begin() -> None:
        nonlocal current
        if len(parts) >= _MAX_PARTS:
            raise InvalidInput(
                f"the form has more than {_MAX_PARTS} parts; accepted fields: {', '.join(CLASSIFY_FIELDS)}"
            )
        current = _Part()
        parts.append(current)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        if bytes(header_name).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(header_value))
            if b"name" in options:
                current.name = options[b"name"].decode("utf-8", "replace")
            if b"filename" in options:
                current.filename = options[b"filename"].decode("utf-8", "replace")
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current.data.extend(data[start:end])

    def on_end() -> None:
        nonlocal finished
        finished = True

    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_part_data": on_part_data,
                "on_end": on_end,
            },
        )
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
    except FormParserError as exc:
        raise BadRequest(f"malformed multipart/form-data body ({exc})") from None
    if not finished:
        raise BadRequest("the multipart/form-data body is incomplete (no closing boundary)")
    return parts


def _one(parts: list[_Part], name: str) -> _Part | None:
    found = [part for part in parts if part.name == name]
    if len(found) > 1:
        raise InvalidInput(f"the form has {len(found)} '{name}' fields; send one")
    return found[0] if found else None


def _text(part: _Part | None, name: str) -> str | None:
    if part is None:
        return None
    if len(part.data) > _MAX_TEXT_FIELD:
        raise InvalidInput(f"the '{name}' field is over {_MAX_TEXT_FIELD} bytes")
    try:
        return part.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput(f"the '{name}' field is not UTF-8 text") from None


async def read_classify_form(request: Request) -> ClassifyForm:
    """The image, label and model fields of a /classify or /explain form; 422 naming what is missing or doubled."""
    parts = await read_multipart(request)
    image = _one(parts, "image")
    if image is None:
        names = sorted({part.name for part in parts if part.name}) or ["none"]
        raise InvalidInput(
            f"the form has no 'image' field (fields sent: {', '.join(names)}); "
            f"send the image as a file field: -F image=@x.png; accepted fields: {', '.join(CLASSIFY_FIELDS)}"
        )
    label = _text(_one(parts, "label"), "label")
    model = _text(_one(parts, "model"), "model")
    return ClassifyForm(image=bytes(image.data), label=label, model=model or None)


def image_error(exc: image_files.ImageDecodeError) -> ServiceError:
    """The HTTP error for an image that cannot be used: 415 for no accepted format, 422 otherwise."""
    if isinstance(exc, image_files.UnsupportedImageFormat):
        return UnsupportedMediaType(str(exc))
    return InvalidInput(str(exc))


async def decode_upload(data: bytes, *, max_pixels: int, decoders: anyio.CapacityLimiter | None = None) -> torch.Tensor:
    """An uploaded image file -> (28, 28) uint8 grayscale tensor, or the 4xx error that says what is wrong.

    A large image is decoded in a worker thread, at most ``decoders`` at once (anyio's default limiter when None).
    """
    try:
        img = image_files.open_image(data, max_pixels=max_pixels)
        if img.width * img.height <= INLINE_PIXELS and len(data) <= INLINE_BYTES:
            return image_files.decode_pixels(img)
        return await anyio.to_thread.run_sync(image_files.decode_pixels, img, limiter=decoders)
    except image_files.ImageDecodeError as exc:
        raise image_error(exc) from None


@dataclass(frozen=True)
class Upload:
    """The form of /classify and /explain, read and decoded."""

    image: torch.Tensor  # (28, 28) uint8
    label: int | None
    model: str | None  # None: the default model


async def read_upload(
    request: Request, query_model: str | None, *, max_pixels: int, decoders: anyio.CapacityLimiter | None = None
) -> Upload:
    """Read, check and decode the upload form. Its bytes are not kept: a request waiting for a model holds
    the decoded 28x28 image only."""
    form = await read_classify_form(request)
    label = parse_label(form.label)
    image = await decode_upload(form.image, max_pixels=max_pixels, decoders=decoders)
    return Upload(image, label, pick_model(query_model, form.model))
