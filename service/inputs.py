"""Reading request inputs: labels, model names, the multipart form of /classify, /explain, /classify/batch and
/translate, and the images.

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
from service import sketches
from service.errors import BadRequest, InvalidInput, PayloadTooLarge, ServiceError, UnsupportedMediaType

CLASSIFY_FIELDS = ("image", "label", "model")
SKETCH_FIELDS = ("image",)
_MAX_PARTS = 16  # of a /classify or /explain form; a batch's: this beyond two per image (an image and its label)
_USAGE = "e.g. curl -F image=@x.png -F label=8 …/classify"
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


async def read_multipart(
    request: Request,
    *,
    max_parts: int = _MAX_PARTS,
    max_images: int | None = None,
    usage: str = _USAGE,
    fields: tuple[str, ...] = CLASSIFY_FIELDS,
) -> list[_Part]:
    """Parse a multipart/form-data body into its parts (415 for another content type, 400 if malformed, 422 for
    more than ``max_parts`` parts or ``max_images`` 'image' fields, refused as soon as the part is seen).
    ``fields``: the form's fields, named in the messages."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        got = content_type.decode("latin-1") or "no Content-Type"
        raise UnsupportedMediaType(f"expected multipart/form-data with a file field 'image' (got {got}); {usage}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("the multipart/form-data Content-Type has no boundary parameter")

    parts: list[_Part] = []
    current = _Part()
    header_name = bytearray()
    header_value = bytearray()
    finished = False
    images = 0

    def on_part_begin() -> None:
        nonlocal current
        if len(parts) >= max_parts:
            raise InvalidInput(f"the form has more than {max_parts} parts; accepted fields: {', '.join(fields)}")
        current = _Part()
        parts.append(current)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        nonlocal images
        if bytes(header_name).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(header_value))
            if b"name" in options:
                current.name = options[b"name"].decode("utf-8", "replace")
                images += current.name == "image"
                if max_images is not None and images > max_images:
                    raise InvalidInput(too_many_images(max_images))
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


def _no_image(parts: list[_Part], how: str, fields: tuple[str, ...] = CLASSIFY_FIELDS) -> InvalidInput:
    names = sorted({part.name for part in parts if part.name}) or ["none"]
    return InvalidInput(
        f"the form has no 'image' field (fields sent: {', '.join(names)}); "
        f"send {how}; accepted fields: {', '.join(fields)}"
    )


async def read_classify_form(request: Request) -> ClassifyForm:
    """The image, label and model fields of a /classify or /explain form; 422 naming what is missing or doubled."""
    parts = await read_multipart(request)
    image = _one(parts, "image")
    if image is None:
        raise _no_image(parts, "the image as a file field: -F image=@x.png")
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


# Sketches ---------------------------------------------------------------------------------------

_SKETCH_USAGE = "e.g. curl -F image=@sketch.png -o garment.png …/translate"


async def read_sketch(
    request: Request,
    invert: sketches.Invert = "auto",
    *,
    max_pixels: int,
    decoders: anyio.CapacityLimiter | None = None,
) -> sketches.Sketch:
    """Read the /translate form (one 'image' file; other fields are ignored, as /classify ignores them), decode
    the image as every upload is, and ready it for the model (service.sketches: polarity, blank sketches).

    The form's and the image's errors are /classify's, word for word; a blank sketch is a 422 of its own."""
    parts = await read_multipart(request, usage=_SKETCH_USAGE, fields=SKETCH_FIELDS)
    image = _one(parts, "image")
    if image is None:
        raise _no_image(parts, "the sketch as a file field: -F image=@sketch.png", SKETCH_FIELDS)
    data = bytes(image.data)
    image.data.clear()  # a request waiting for the model holds the decoded 28x28 sketch only
    pixels = await decode_upload(data, max_pixels=max_pixels, decoders=decoders)
    return sketches.prepare(pixels, invert)


# Batches ----------------------------------------------------------------------------------------

_BATCH_USAGE = "e.g. curl -F image=@a.png -F image=@b.png …/classify/batch"


def too_many_images(limit: int) -> str:
    return f"the batch has more than {limit} images (FGAN_MAX_BATCH_IMAGES); send at most {limit} per request"


@dataclass(frozen=True)
class BatchUpload:
    """The form of /classify/batch, read and decoded: for each image, in order, its pixels and label, or the
    error /classify would answer for it alone."""

    items: list[Upload | ServiceError]  # an Upload's model is the batch's
    model: str | None

    @property
    def uploads(self) -> list[Upload]:
        return [item for item in self.items if isinstance(item, Upload)]


async def read_batch_upload(
    request: Request,
    query_model: str | None,
    *,
    max_images: int,
    max_image_bytes: int,
    max_pixels: int,
    decoders: anyio.CapacityLimiter | None = None,
) -> BatchUpload:
    """Read a /classify/batch form: 1 to ``max_images`` 'image' fields, as many 'label' fields (matched in
    order) or none, and at most one 'model'. Those are the request's 422s; an image that /classify would refuse
    (over ``max_image_bytes``, not an accepted image, corrupt, too many pixels, a bad label) becomes its error,
    in its place, with the code and message /classify gives it."""
    parts = await read_multipart(
        request, max_parts=2 * max_images + _MAX_PARTS, max_images=max_images, usage=_BATCH_USAGE
    )
    images = [part for part in parts if part.name == "image"]
    if not images:
        raise _no_image(parts, f"1 to {max_images} images as file fields: -F image=@a.png -F image=@b.png …")
    labels: list[_Part | None] = [part for part in parts if part.name == "label"]
    if not labels:
        labels = [None] * len(images)
    elif len(labels) != len(images):
        raise InvalidInput(
            f"the batch has {len(images)} images and {len(labels)} label{'s' * (len(labels) > 1)}; send one 'label' "
            "field per image, in the same order, or none"
        )
    model = pick_model(query_model, _text(_one(parts, "model"), "model") or None)
    items: list[Upload | ServiceError] = []
    for image, label in zip(images, labels, strict=True):
        try:
            if len(image.data) > max_image_bytes:
                raise PayloadTooLarge(
                    f"the image is over the {max_image_bytes} byte upload limit (FGAN_MAX_UPLOAD_BYTES); "
                    "send a smaller image"
                )
            label_id = parse_label(_text(label, "label"))
            pixels = await decode_upload(bytes(image.data), max_pixels=max_pixels, decoders=decoders)
        except ServiceError as exc:
            items.append(exc)
        else:
            items.append(Upload(pixels, label_id, model))
        image.data.clear()  # a waiting batch holds its decoded images only
    return BatchUpload(items, model)
