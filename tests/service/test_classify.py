"""POST /classify: the reference call, each accepted image kind, the detector, and every bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.service.support import (
    expected_p_real,
    expected_verdict,
    image_bytes,
    make_detector,
    make_detector_ensemble,
    make_discriminator,
    png_bytes,
    sample_pixels,
    write_weights,
)

PIXELS = sample_pixels()


def classify(client, data: bytes, filename: str = "x.png", **fields: str):
    return client.post("/classify", files={"image": (filename, data, "application/octet-stream")}, data=fields)


def discriminator_answer(pixels: np.ndarray, label: int) -> dict:
    return expected_verdict(expected_p_real(make_discriminator(), pixels, label))


def test_reference_call_answers_label_and_confidence(client) -> None:
    response = classify(client, png_bytes(PIXELS), label="8")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"label", "confidence"}
    assert body["label"] in ("real", "fake")
    assert 0.5 <= body["confidence"] <= 1.0
    assert body == discriminator_answer(PIXELS, 8)


def test_label_by_name_and_model_field(client) -> None:
    by_id = classify(client, png_bytes(PIXELS), label="8").json()
    assert classify(client, png_bytes(PIXELS), label="bag").json() == by_id
    assert classify(client, png_bytes(PIXELS), label="8", model="discriminator").json() == by_id
    response = client.post(
        "/classify?model=discriminator", files={"image": ("x.png", png_bytes(PIXELS), "image/png")}, data={"label": "8"}
    )
    assert response.json() == by_id


def test_confidence_is_rounded_after_the_decision() -> None:
    from service.engine import verdict

    assert verdict(0.49996, "d") == verdict(0.49996, "d")
    assert verdict(0.49996, "d").label == "fake"
    assert verdict(0.49996, "d").confidence == 0.5
    assert verdict(0.5, "d").label == "fake"  # a logit of 0, as the metrics and the classify command decide
    assert verdict(0.500001, "d").label == "real" and verdict(0.500001, "d").confidence == 0.5
    assert verdict(0.999999, "d").confidence == 1.0
    assert verdict(0.12345678, "d").confidence == 0.8765


def _rgb(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.stack([pixels] * 3, axis=-1))


# Lossless encodings of PIXELS in every accepted format and mode: each must give PIXELS' exact verdict.
LOSSLESS = {
    "png-gray": lambda: png_bytes(PIXELS),
    "png-rgb": lambda: image_bytes(_rgb(PIXELS), "PNG"),
    "png-rgba-opaque": lambda: image_bytes(_rgb(PIXELS).convert("RGBA"), "PNG"),
    "png-16-bit": lambda: image_bytes(Image.fromarray(PIXELS.astype(np.uint16) * 257), "PNG"),
    "png-palette": lambda: image_bytes(Image.fromarray(PIXELS).convert("P"), "PNG"),
    "png-gray-alpha": lambda: image_bytes(Image.fromarray(PIXELS).convert("LA"), "PNG"),
    "gif": lambda: image_bytes(Image.fromarray(PIXELS).convert("P"), "GIF"),
    "bmp": lambda: image_bytes(_rgb(PIXELS), "BMP"),
    "tiff": lambda: image_bytes(Image.fromarray(PIXELS), "TIFF"),
    "tiff-16-bit": lambda: image_bytes(Image.fromarray(PIXELS.astype(np.uint16) * 257), "TIFF"),
    "webp-lossless": lambda: image_bytes(_rgb(PIXELS), "WEBP", lossless=True),
    "png-56x56": lambda: png_bytes(np.repeat(np.repeat(PIXELS, 2, axis=0), 2, axis=1)),  # area-averaged back
}


@pytest.mark.parametrize("kind", sorted(LOSSLESS))
def test_accepted_formats_and_modes_decode_to_the_same_pixels(client, kind: str) -> None:
    response = classify(client, LOSSLESS[kind](), label="3")
    assert response.status_code == 200, response.text
    assert response.json() == discriminator_answer(PIXELS, 3)


def test_transparency_is_composited_on_black(client) -> None:
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white, fully transparent except a block
    rgba[6:22, 8:20, 3] = 255
    expected = np.zeros((28, 28), dtype=np.uint8)
    expected[6:22, 8:20] = 255
    response = classify(client, image_bytes(Image.fromarray(rgba), "PNG"), label="1")
    assert response.json() == discriminator_answer(expected, 1)


def test_gif_animation_uses_the_first_frame(client) -> None:
    frames = [Image.fromarray(PIXELS).convert("P"), Image.fromarray(255 - PIXELS).convert("P")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    assert classify(client, buffer.getvalue(), label="2").json() == discriminator_answer(PIXELS, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: image_bytes(_rgb(PIXELS), "JPEG", quality=90),
        lambda: image_bytes(_rgb(PIXELS).convert("CMYK"), "JPEG"),
        lambda: image_bytes(_rgb(PIXELS), "WEBP", quality=80),
        lambda: png_bytes(PIXELS[::2, ::2]),  # 14x14: enlarged
        lambda: png_bytes(np.zeros((300, 500), dtype=np.uint8)),  # not square
        lambda: image_bytes(Image.new("1", (28, 28), 1), "PNG"),
    ],
    ids=["jpeg", "jpeg-cmyk", "webp-lossy", "png-14x14", "png-500x300", "png-1-bit"],
)
def test_other_accepted_images_get_a_verdict(client, make) -> None:
    response = classify(client, make(), label="0")
    assert response.status_code == 200, response.text
    assert 0.5 <= response.json()["confidence"] <= 1.0


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG declaring width x height, with a token of pixel data: a decompression bomb's calling card."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _chunk(b"IEND", b"")


# Images /classify refuses: the bytes, the status, and words the message must hold.
BAD_IMAGES = {
    "empty": (b"", 422, ["empty"]),
    "text": (b"hello, I am a text file\n", 415, ["not a readable image", "PNG, JPEG"]),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"/>', 415, ["PNG, JPEG, GIF"]),
    "pdf": (b"%PDF-1.4\n" + b"0" * 100, 415, ["not a readable image"]),
    "truncated": (png_bytes(PIXELS)[:60], 422, ["truncated or corrupt"]),
    "over-pixel-limit": (_png_header_only(2000, 2000), 422, ["2000x2000", "1048576"]),
    "bomb": (_png_header_only(100_000, 100_000), 422, ["pixels"]),
}


@pytest.mark.parametrize(("data", "status", "words"), BAD_IMAGES.values(), ids=list(BAD_IMAGES))
def test_bad_images_get_4xx_saying_what_is_wrong(client, data: bytes, status: int, words: list[str]) -> None:
    response = classify(client, data, label="8")
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["detail"]


def test_corrupt_pixel_data_is_422(client) -> None:
    data = bytearray(png_bytes(sample_pixels(5)))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = b"\xff" * 40  # keep the header, break the compressed pixels
    response = classify(client, bytes(data), label="8")
    assert response.status_code == 422
    assert "corrupt" in response.json()["detail"]


def test_bombs_are_refused_before_any_pixel_is_decoded(client, monkeypatch) -> None:
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    # A real, valid 4096x4096 PNG of 20 KB: it would decode to 16 MB.
    big = png_bytes(np.zeros((4096, 4096), dtype=np.uint8))
    assert len(big) < 100_000
    response = classify(client, big, label="8")
    assert response.status_code == 422
    assert "4096x4096" in response.json()["detail"]


def test_pixel_limit_is_a_setting(make_client) -> None:
    client = make_client(max_image_pixels=64 * 64)
    assert classify(client, png_bytes(np.zeros((64, 64), dtype=np.uint8)), label="1").status_code == 200
    response = classify(client, png_bytes(np.zeros((65, 64), dtype=np.uint8)), label="1")
    assert response.status_code == 422
    assert "4096 pixels" in response.json()["detail"]


def test_body_over_the_upload_limit_is_413(make_client) -> None:
    client = make_client(max_upload_bytes=64 * 1024)
    response = classify(client, b"\0" * (100 * 1024), label="1")
    assert response.status_code == 413
    assert "65536 byte upload limit" in response.json()["detail"]
    # Just under the limit still goes through to the decoder.
    assert classify(client, png_bytes(PIXELS), label="1").status_code == 200


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"label": "8", "model": "oracle"}, 422, ["oracle", "discriminator"]),
        ({"label": "8", "model": "detector"}, 422, ["no detector is loaded", "discriminator"]),
        ({"label": "12"}, 422, ["label id 12", "0-9"]),
        ({"label": "hat"}, 422, ["hat", "Ankle boot"]),
        ({"label": ""}, 422, ["empty", "0-9"]),
        ({}, 422, ["needs the image's class", "label"]),
    ],
    ids=["unknown-model", "no-detector", "label-out-of-range", "label-unknown", "label-empty", "label-missing"],
)
def test_bad_fields_get_422(client, fields: dict, status: int, words: list[str]) -> None:
    response = classify(client, png_bytes(PIXELS), **fields)
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["detail"]


def test_form_problems_get_4xx(client) -> None:
    image = png_bytes(PIXELS)
    # Not multipart at all: a raw PNG body, or JSON.
    response = client.post("/classify", content=image, headers={"Content-Type": "image/png"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]
    assert client.post("/classify", json={"image": "x", "label": 1}).status_code == 415
    # No image field.
    response = client.post("/classify", data={"label": "8"}, files={"picture": ("x.png", image, "image/png")})
    assert response.status_code == 422
    assert "no 'image' field" in response.json()["detail"]
    assert "picture" in response.json()["detail"]
    # Two images.
    response = client.post(
        "/classify",
        data={"label": "8"},
        files=[("image", ("a.png", image, "image/png")), ("image", ("b.png", image, "image/png"))],
    )
    assert response.status_code == 422
    assert "2 'image' fields" in response.json()["detail"]
    # Model in the query and in the form, disagreeing.
    response = client.post(
        "/classify?model=detector",
        data={"label": "8", "model": "discriminator"},
        files={"image": ("x.png", image, "image/png")},
    )
    assert response.status_code == 422
    # Broken multipart encodings.
    headers = {"Content-Type": "multipart/form-data"}
    assert client.post("/classify", content=b"--x\r\n", headers=headers).status_code == 400
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    response = client.post(
        "/classify", content=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nab', headers=headers
    )
    assert response.status_code == 400
    assert "incomplete" in response.json()["detail"]
    response = client.post("/classify", content=b"garbage without boundary", headers=headers)
    assert response.status_code == 400


def test_image_sent_as_a_plain_field_is_read_too(client) -> None:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\n8\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
        ).encode()
        + png_bytes(PIXELS)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/classify", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 200
    assert response.json() == discriminator_answer(PIXELS, 8)


@pytest.fixture(params=[make_detector, make_detector_ensemble], ids=["detector", "ensemble"])
def make_judge(request):
    """How the detector is built: one network, or an ensemble of two."""
    return request.param


@pytest.fixture
def detector_client(make_client, tmp_path, make_judge):
    weights = write_weights(tmp_path, detector=make_judge(), detector_metrics={"temperature": 2.0, "auc": 0.9})
    return make_client(weights)


def test_detector_is_the_default_and_works_without_a_label(detector_client, make_judge) -> None:
    detector = make_judge()
    for label in (None, 4):
        fields = {} if label is None else {"label": str(label)}
        response = classify(detector_client, png_bytes(PIXELS), **fields)
        assert response.status_code == 200
        assert response.json() == expected_verdict(expected_p_real(detector, PIXELS, label, temperature=2.0))
    # The discriminator stays available, and still needs the label.
    response = classify(detector_client, png_bytes(PIXELS), label="4", model="discriminator")
    assert response.json() == discriminator_answer(PIXELS, 4)
    response = classify(detector_client, png_bytes(PIXELS), model="discriminator")
    assert response.status_code == 422
    assert "model=detector" in response.json()["detail"]


def test_detector_and_its_temperature_show_in_info(detector_client) -> None:
    info = detector_client.get("/info").json()
    assert info["default_classifier"] == "detector"
    detector = next(m for m in info["models"] if m["name"] == "detector")
    assert detector["temperature"] == 2.0
    assert detector["metrics"]["auc"] == 0.9


def test_unconditional_discriminator_needs_no_label(make_client, tmp_path) -> None:
    weights = write_weights(tmp_path, discriminator=make_discriminator(num_classes=0))
    response = classify(make_client(weights), png_bytes(PIXELS))
    assert response.status_code == 200
    assert response.json() == expected_verdict(expected_p_real(make_discriminator(num_classes=0), PIXELS, None))


def test_every_verdict_names_the_model_and_the_weights_that_gave_it(detector_client) -> None:
    import hashlib

    info = {m["name"]: m for m in detector_client.get("/info").json()["models"]}
    weights = detector_client.app.state.settings.weights_dir
    for model in ("detector", "discriminator"):
        fields = {"label": "4", "model": model}
        response = classify(detector_client, png_bytes(PIXELS), **fields)
        assert response.status_code == 200
        name, _, version = response.headers["X-Model"].partition("@")
        assert name == model and version == info[model]["version"] and len(version) == 12
        data = (weights / model / "model.safetensors").read_bytes()
        assert version == hashlib.sha256(data).hexdigest()[:12]
    assert info["detector"]["version"] != info["discriminator"]["version"]
    # The schema says so too.
    schema = detector_client.get("/openapi.json").json()["paths"]["/classify"]["post"]["responses"]["200"]
    assert "X-Model" in schema["headers"]
