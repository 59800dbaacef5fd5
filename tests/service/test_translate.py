"""POST /translate: a sketch in, a garment out.

The answer is a PNG computed by the tiny translator of tests/service/support.py, so every answer is known
exactly; what the weights draw does not matter here (shapes, determinism, polarity, batching and errors do).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import models
from service.engine import Engine
from service.routes.translate import DirectTranslate, plain_query
from service.sketches import BLANK_RANGE
from tests.service.support import (
    decode_png,
    expected_garment,
    image_bytes,
    make_detector,
    make_translator,
    metric,
    png_bytes,
    sketch_pixels,
    write_weights,
)
from tests.service.test_classify import BAD_IMAGES
from tests.service.test_engine import gather, serving, wait_for

SKETCH = sketch_pixels()
TRANSLATOR = make_translator()


@pytest.fixture(scope="module")
def translator_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generator, discriminator, detector and translator."""
    return write_weights(tmp_path_factory.mktemp("weights"), detector=make_detector(), translator=make_translator())


@pytest.fixture
def client(make_client, translator_weights: Path):
    return make_client(translator_weights)


def translate(client, data: bytes, filename: str = "sketch.png", **params: str | int):
    return client.post("/translate", params=params, files={"image": (filename, data, "application/octet-stream")})


def garment(sketch: np.ndarray) -> np.ndarray:
    return expected_garment(TRANSLATOR, sketch)


# Answers -------------------------------------------------------------------------------------------------


def test_a_sketch_becomes_a_28x28_png_of_the_garment(client) -> None:
    response = translate(client, png_bytes(SKETCH))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decode_png(response.content), garment(SKETCH))
    assert response.headers["x-sketch-inverted"] == "false"
    name, _, version = response.headers["x-model"].partition("@")
    info = {m["name"]: m for m in client.get("/info").json()["models"]}
    assert name == "pix2pix" and version == info["pix2pix"]["version"] and len(version) == 12


def test_the_same_sketch_always_gives_the_same_bytes(client) -> None:
    answers = {translate(client, png_bytes(SKETCH)).content for _ in range(3)}
    assert len(answers) == 1
    assert translate(client, png_bytes(sketch_pixels(1))).content not in answers


@pytest.mark.parametrize("scale", [1, 2, 8, 16])
def test_scale_enlarges_each_pixel_to_a_block(client, scale: int) -> None:
    response = translate(client, png_bytes(SKETCH), scale=scale)
    assert response.status_code == 200
    pixels = decode_png(response.content)
    assert pixels.shape == (28 * scale, 28 * scale)
    np.testing.assert_array_equal(pixels[::scale, ::scale], garment(SKETCH))
    np.testing.assert_array_equal(pixels, np.kron(garment(SKETCH), np.ones((scale, scale), dtype=np.uint8)))


def test_dark_strokes_on_a_light_background_are_inverted(client) -> None:
    light_on_dark = translate(client, png_bytes(SKETCH))
    dark_on_light = translate(client, png_bytes(255 - SKETCH))
    assert dark_on_light.status_code == 200
    assert dark_on_light.headers["x-sketch-inverted"] == "true"
    assert dark_on_light.content == light_on_dark.content
    # A JPEG photo-like sketch: grey paper, darker strokes. Its border's median decides.
    paper = np.where(SKETCH > 0, 40, 215).astype(np.uint8)
    response = translate(client, image_bytes(Image.fromarray(paper), "JPEG", quality=95))
    assert response.headers["x-sketch-inverted"] == "true"
    # A dark grey background is a dark one.
    slate = np.where(SKETCH > 0, 230, 100).astype(np.uint8)
    response = translate(client, png_bytes(slate))
    assert response.headers["x-sketch-inverted"] == "false"
    np.testing.assert_array_equal(decode_png(response.content), garment(slate))


def test_invert_can_be_given_instead_of_detected(client) -> None:
    forced = translate(client, png_bytes(SKETCH), invert="true")
    assert forced.headers["x-sketch-inverted"] == "true"
    np.testing.assert_array_equal(decode_png(forced.content), garment(255 - SKETCH))
    kept = translate(client, png_bytes(255 - SKETCH), invert="false")
    assert kept.headers["x-sketch-inverted"] == "false"
    np.testing.assert_array_equal(decode_png(kept.content), garment(255 - SKETCH))
    auto = translate(client, png_bytes(255 - SKETCH), invert="auto")
    assert auto.content == translate(client, png_bytes(SKETCH)).content


def test_a_large_drawing_in_any_accepted_format_is_converted_as_uploads_are(client) -> None:
    # A 280x280 drawing, dark strokes on white, as a person draws it: area-averaged down to the 28x28 sketch.
    drawing = np.kron(255 - SKETCH, np.ones((10, 10), dtype=np.uint8))
    expected = translate(client, png_bytes(255 - SKETCH)).content
    for data in (
        png_bytes(drawing),
        image_bytes(Image.fromarray(drawing).convert("RGB"), "BMP"),
        image_bytes(Image.fromarray(drawing).convert("RGBA"), "WEBP", lossless=True),
        image_bytes(Image.fromarray(drawing), "TIFF"),
    ):
        response = translate(client, data)
        assert response.status_code == 200, response.text
        assert response.headers["x-sketch-inverted"] == "true"
        assert response.content == expected
    # A lossy one still gets a garment.
    response = translate(client, image_bytes(Image.fromarray(drawing), "JPEG", quality=70))
    assert response.status_code == 200 and decode_png(response.content).shape == (28, 28)


def test_other_form_fields_are_ignored_as_classify_ignores_them(client) -> None:
    response = client.post(
        "/translate",
        files={"image": ("s.png", png_bytes(SKETCH), "image/png")},
        data={"label": "7", "model": "oracle"},
    )
    assert response.status_code == 200
    np.testing.assert_array_equal(decode_png(response.content), garment(SKETCH))


# Batching ------------------------------------------------------------------------------------------------


def test_a_sketch_alone_and_in_a_batch_gives_the_same_pixels(make_client, tmp_path: Path) -> None:
    """The engine's batch function, directly, on a translator of the shipped size (random weights): every sketch
    alone equals its row in batches of every size. (Tiny networks hide the difference: PyTorch's CPU convolution
    sums a lone image in another order than a batch, which at the shipped size puts a few pixels of 40 sketches
    a grey level off; the U-Net's batch-invariant layers, models.layers, prevent it.)"""
    torch.manual_seed(0)
    weights = write_weights(tmp_path, translator=models.Pix2PixGenerator(models.Pix2PixGeneratorConfig()).eval())
    engine: Engine = make_client(weights).app.state.engine
    rng = np.random.default_rng(0)
    sketches = [sketch_pixels(seed) for seed in range(40)]
    sketches += [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(40)]  # all kinds of inputs
    tensors = [torch.from_numpy(s) for s in sketches]
    alone = np.stack([engine._predict_translate([t])[0] for t in tensors])
    for size in (2, 3, 5, 8, 16, 17, 32, 40):
        batched = np.concatenate(
            [np.stack(engine._predict_translate(tensors[i : i + size])) for i in range(0, len(tensors), size)]
        )
        np.testing.assert_array_equal(batched, alone, err_msg=f"batch size {size}")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_concurrent_requests_are_batched_and_each_gets_the_png_it_gets_alone(
    translator_weights: Path, anyio_backend: str
) -> None:
    sketches = [sketch_pixels(seed, dark_on_light=seed % 2 == 1) for seed in range(12)]
    async with serving(translator_weights) as (_, client):
        alone = [(await client.post("/translate", files={"image": ("s.png", png_bytes(s))})).content for s in sketches]
    # A long batch window, so that the concurrent requests certainly meet in the queue.
    async with serving(translator_weights, max_batch_size=64, batch_timeout_ms=300) as (_, client):
        responses = await gather(
            *[
                lambda s=s: client.post("/translate", files={"image": ("s.png", png_bytes(s))}, params={"scale": 2})
                for s in sketches
            ]
        )
        for i, response in enumerate(responses):
            assert response.status_code == 200, response.text
            assert response.headers["x-sketch-inverted"] == ("true" if i % 2 else "false")
            pixels = decode_png(response.content)[::2, ::2]
            np.testing.assert_array_equal(pixels, decode_png(alone[i]))
        text = (await client.get("/metrics")).text
        batches = metric(text, "fgan_engine_batch_size_count", model="pix2pix")
        assert metric(text, "fgan_engine_batch_size_sum", model="pix2pix") == len(sketches)
        assert 1 <= batches < len(sketches)  # they met in batches (the warm-up bypasses the queue)
        assert metric(text, "fgan_http_requests_total", route="/translate", method="POST", status="200") == 12


# Overload, timeout ---------------------------------------------------------------------------------------


@pytest.fixture
def gate(monkeypatch):
    """Holds the engine worker's translator batches until set."""
    gate = threading.Event()
    predict = Engine._predict_translate

    def held(self, sketches):
        if threading.current_thread().name.startswith("batcher-"):  # not the warm-up
            gate.wait(10)
        return predict(self, sketches)

    monkeypatch.setattr(Engine, "_predict_translate", held)
    yield gate
    gate.set()


def _post(client: httpx.AsyncClient, sketch: np.ndarray):
    return client.post("/translate", files={"image": ("s.png", png_bytes(sketch), "image/png")})


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_full_queue_answers_503_with_retry_after(translator_weights: Path, gate, anyio_backend: str) -> None:
    async with serving(translator_weights, queue_limit=1, max_batch_size=1) as (app, client):
        batcher = next(b for b in app.state.engine.batchers if b.name == "pix2pix")
        answers: list[httpx.Response] = []

        async def call() -> None:
            answers.append(await _post(client, SKETCH))

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await wait_for(lambda: batcher.busy == 1 and batcher.depth == 0)  # running, held by the gate
            group.start_soon(call)
            await wait_for(lambda: batcher.depth == 1)  # waiting: the queue is full
            response = await _post(client, SKETCH)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"] == "overloaded"
            assert "pix2pix queue is full" in response.json()["detail"]
            gate.set()
        assert [a.status_code for a in answers] == [200, 200]
        text = (await client.get("/metrics")).text
        assert metric(text, "fgan_engine_rejected_total", model="pix2pix", reason="queue_full") == 1
        assert metric(text, "fgan_http_requests_total", route="/translate", method="POST", status="503") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_request_past_its_timeout_gets_504(translator_weights: Path, gate, anyio_backend: str) -> None:
    async with serving(translator_weights, request_timeout_s=0.3, max_batch_size=1) as (_, client):
        response = await _post(client, SKETCH)
        assert response.status_code == 504
        assert "0.3s" in response.json()["detail"]
        gate.set()
        text = (await client.get("/metrics")).text
        assert metric(text, "fgan_http_requests_total", route="/translate", method="POST", status="504") == 1


# Bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_images_get_exactly_the_answer_classify_gives(client, kind: str) -> None:
    data, status, words = BAD_IMAGES[kind]
    ours = translate(client, data)
    theirs = client.post("/classify", files={"image": ("sketch.png", data, "application/octet-stream")})
    assert ours.status_code == theirs.status_code == status, ours.text
    assert ours.json() == theirs.json()
    for word in words:
        assert word in ours.json()["detail"]


def test_corrupt_pixel_data_gets_classifys_answer(client) -> None:
    data = bytearray(png_bytes(SKETCH))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = b"\xff" * 40
    ours = translate(client, bytes(data))
    assert ours.status_code == 422
    assert ours.json() == client.post("/classify", files={"image": ("x.png", bytes(data))}).json()


def _transparent_with_black_strokes() -> bytes:
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(SKETCH > 0, 255, 0)  # black strokes on a transparent background: all black on black
    return image_bytes(Image.fromarray(rgba), "PNG")


BLANK_SKETCHES = {
    "black": lambda: png_bytes(np.zeros((28, 28), dtype=np.uint8)),
    "white": lambda: png_bytes(np.full((28, 28), 255, dtype=np.uint8)),
    "grey": lambda: png_bytes(np.full((28, 28), 128, dtype=np.uint8)),
    "white-jpeg-large": lambda: image_bytes(Image.new("RGB", (600, 400), "white"), "JPEG"),
    "empty-canvas-224": lambda: png_bytes(np.zeros((224, 224), dtype=np.uint8)),
    "one-pixel": lambda: png_bytes(np.full((1, 1), 200, dtype=np.uint8)),
    "transparent": lambda: image_bytes(Image.new("RGBA", (64, 64), (255, 255, 255, 0)), "PNG"),
    "black-on-transparent": _transparent_with_black_strokes,
    # One thin line in a large image fades to almost nothing at 28x28 (a 1 px line of 1000 px: 1/36 of it).
    "hairline-1000px": lambda: png_bytes(np.pad(np.full((1, 1000), 255, np.uint8), ((500, 499), (0, 0)))),
    "faint": lambda: png_bytes(np.where(SKETCH > 0, 100 + BLANK_RANGE - 1, 100).astype(np.uint8)),
}


@pytest.mark.parametrize("kind", sorted(BLANK_SKETCHES))
def test_a_blank_sketch_gets_a_422_saying_what_is_wrong_and_what_is_accepted(client, kind: str) -> None:
    response = translate(client, BLANK_SKETCHES[kind]())
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input"
    for words in ("the sketch is blank", "no strokes", "light on dark or dark on light", "PNG, JPEG"):
        assert words in body["detail"]
    # Just enough contrast is a sketch.
    faint = np.where(SKETCH > 0, 100 + BLANK_RANGE, 100).astype(np.uint8)
    assert translate(client, png_bytes(faint)).status_code == 200


def test_the_blank_message_names_the_levels_found(client) -> None:
    assert "it is one grey (255) all over" in translate(client, BLANK_SKETCHES["white"]()).json()["detail"]
    detail = translate(client, BLANK_SKETCHES["faint"]()).json()["detail"]
    assert f"grey levels 100 to {100 + BLANK_RANGE - 1}" in detail


def test_body_and_pixel_limits_are_classifys(make_client, translator_weights: Path) -> None:
    client = make_client(translator_weights, max_upload_bytes=64 * 1024, max_image_pixels=64 * 64)
    response = translate(client, b"\0" * (100 * 1024))
    assert response.status_code == 413
    assert response.json() == client.post("/classify", files={"image": ("x.png", b"\0" * (100 * 1024))}).json()
    big = png_bytes(np.kron(SKETCH, np.ones((3, 3), dtype=np.uint8)))  # 84x84 > 64x64
    response = translate(client, big)
    assert response.status_code == 422
    assert "84x84" in response.json()["detail"] and "4096 pixels" in response.json()["detail"]
    assert translate(client, png_bytes(np.kron(SKETCH, np.ones((2, 2), dtype=np.uint8)))).status_code == 200


def test_form_problems_get_4xx(client) -> None:
    image = png_bytes(SKETCH)
    response = client.post("/translate", content=image, headers={"Content-Type": "image/png"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]
    assert "/translate" in response.json()["detail"]
    response = client.post("/translate", files={"sketch": ("x.png", image, "image/png")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "no 'image' field" in detail and "sketch" in detail and "accepted fields: image" in detail
    response = client.post(
        "/translate", files=[("image", ("a.png", image, "image/png")), ("image", ("b.png", image, "image/png"))]
    )
    assert response.status_code == 422
    assert "2 'image' fields" in response.json()["detail"]
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    response = client.post(
        "/translate", content=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nab', headers=headers
    )
    assert response.status_code == 400
    assert "incomplete" in response.json()["detail"]
    assert (
        client.post("/translate", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"scale": 0}, ["'scale'", "1 to 16"]),
        ({"scale": 17}, ["'scale'", "1 to 16"]),
        ({"scale": "big"}, ["'scale'", "1 to 16"]),
        ({"invert": "maybe"}, ["'invert'", "'auto', 'true' or 'false'"]),
    ],
)
def test_bad_options_get_422(client, params: dict, words: list[str]) -> None:
    response = translate(client, png_bytes(SKETCH), **params)
    assert response.status_code == 422
    for word in words:
        assert word in response.json()["detail"]


def test_get_is_405(client) -> None:
    response = client.get("/translate")
    assert response.status_code == 405
    assert "allowed: POST" in response.json()["detail"]


# Without the model, with a key, and as documented -----------------------------------------------------------


def test_without_pix2pix_weights_the_service_starts_and_translate_answers_503(client_without_translator) -> None:
    client = client_without_translator
    assert client.get("/readyz").status_code == 200
    assert client.get("/generate?label=1").status_code == 200
    for data in (png_bytes(SKETCH), b"not an image"):  # the missing model is said first, whatever the upload
        response = translate(client, data)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        body = response.json()
        assert body["error"] == "model_unavailable"
        assert "no sketch-to-clothing model" in body["detail"] and "pix2pix/" in body["detail"]
    info = client.get("/info").json()
    assert "pix2pix" not in {m["name"] for m in info["models"]}
    assert info["unavailable"] == {"/translate": body["detail"]}
    assert "/translate" not in client.get("/openapi.json").json()["paths"]  # this server does not serve it
    text = client.get("/metrics").text
    assert metric(text, "fgan_http_requests_total", route="/translate", method="POST", status="503") == 2


@pytest.fixture
def client_without_translator(make_client):
    return make_client()  # the session's weights: generator and discriminator only


def test_info_lists_the_translator(client) -> None:
    info = client.get("/info").json()
    pix2pix = next(m for m in info["models"] if m["name"] == "pix2pix")
    assert pix2pix["class_name"] == "Pix2PixGenerator"
    assert pix2pix["label"] == "ignored"
    assert pix2pix["config"]["channels"] == 8
    assert info["unavailable"] == {}
    assert info["classifiers"] == ["detector", "discriminator"]  # /classify's models, not the translator


def test_the_api_key_guards_translate(make_client, translator_weights: Path) -> None:
    client = make_client(translator_weights, api_key="s3cret")
    assert translate(client, png_bytes(SKETCH)).status_code == 401
    response = client.post("/translate", files={"image": ("s.png", png_bytes(SKETCH))}, headers={"X-API-Key": "s3cret"})
    assert response.status_code == 200
    schema = client.get("/openapi.json", headers={"X-API-Key": "s3cret"}).json()
    assert "401" in schema["paths"]["/translate"]["post"]["responses"]


def test_openapi_and_docs_describe_translate_with_examples(client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/translate"]["post"]
    assert "curl -F image=@" in operation["description"]
    body = operation["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["image"]
    assert body["schema"]["properties"]["image"]["format"] == "binary"
    assert "image/png" in body["encoding"]["image"]["contentType"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["scale"]["schema"]["maximum"] == 16 and params["scale"]["examples"]
    assert params["invert"]["schema"]["enum"] == ["auto", "true", "false"]
    ok = operation["responses"]["200"]
    assert "image/png" in ok["content"]
    assert {"X-Model", "X-Sketch-Inverted"} <= set(ok["headers"])
    assert {"400", "413", "415", "422", "503", "504"} <= set(operation["responses"])
    blank = operation["responses"]["422"]["content"]["application/json"]["example"]
    assert "the sketch is blank" in blank["detail"]
    assert operation["responses"]["503"]["content"]["application/json"]["example"]["error"] == "model_unavailable"
    assert "swagger-ui" in client.get("/docs").text


def test_the_readme_call_works_from_a_file(client, tmp_path: Path) -> None:
    """The API does what the page does from a file: a drawn shoe outline, dark on white, 200 px, as JPEG."""
    drawing = Image.new("L", (200, 200), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(drawing).line([(20, 150), (60, 100), (110, 110), (180, 150), (20, 150)], fill=0, width=12)
    path = tmp_path / "shoe.jpg"
    drawing.save(path, format="JPEG", quality=90)
    response = translate(client, path.read_bytes(), filename="shoe.jpg", scale=4)
    assert response.status_code == 200
    assert response.headers["x-sketch-inverted"] == "true"
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (112, 112))


# The direct path -----------------------------------------------------------------------------------------

PLAIN_QUERIES = ["", "scale=1", "scale=16", "invert=true", "invert=false&scale=3", "scale=2&invert=auto"]
LEFT_TO_FASTAPI = [
    "scale=2&scale=3",  # an option twice
    "scale=02",  # not plain digits (FastAPI reads it as 2)
    "scale=%2B2",
    "scale=2&extra=1",  # an unknown option (FastAPI ignores it)
    "scale=0",  # the errors, worded by the route
    "scale=17",
    "scale=",
    "scale=big",
    "invert=maybe",
    "invert=",
    "invert=TRUE",
]


def _answer(response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
    return response.status_code, headers, response.content


def test_which_queries_the_direct_path_answers() -> None:
    assert plain_query(b"") == {"scale": 1, "invert": "auto"}
    assert plain_query(b"invert=false&scale=3") == {"scale": 3, "invert": "false"}
    for query in PLAIN_QUERIES:
        assert plain_query(query.encode()) is not None, query
    for query in LEFT_TO_FASTAPI:
        assert plain_query(query.encode()) is None, query


# Bodies for both paths: a good sketch, blank, corrupt, not an image, no image field, not multipart.
BODIES = {
    "sketch": {"files": {"image": ("s.png", png_bytes(SKETCH), "image/png")}},
    "dark-on-light": {"files": {"image": ("s.png", png_bytes(255 - SKETCH), "image/png")}},
    "blank": {"files": {"image": ("s.png", png_bytes(np.zeros((28, 28), np.uint8)), "image/png")}},
    "corrupt": {"files": {"image": ("s.png", png_bytes(SKETCH)[:60], "image/png")}},
    "text": {"files": {"image": ("s.txt", b"not an image", "text/plain")}},
    "no-image": {"files": {"picture": ("s.png", png_bytes(SKETCH), "image/png")}},
    "raw-png": {"content": png_bytes(SKETCH), "headers": {"Content-Type": "image/png"}},
}


@pytest.mark.parametrize("query", PLAIN_QUERIES + LEFT_TO_FASTAPI)
def test_direct_path_and_fastapi_route_answer_alike(make_client, translator_weights: Path, query: str) -> None:
    direct = make_client(translator_weights)
    routed = make_client(translator_weights, direct_translate=False)
    for name, body in BODIES.items():
        ours, theirs = (client.post(f"/translate?{query}", **body) for client in (direct, routed))
        assert _answer(ours) == _answer(theirs), name


def test_direct_path_and_fastapi_route_answer_alike_without_the_model(make_client) -> None:
    direct, routed = make_client(), make_client(direct_translate=False)
    for name, body in BODIES.items():
        assert _answer(direct.post("/translate", **body)) == _answer(routed.post("/translate", **body)), name


def test_direct_path_is_installed_unless_turned_off(make_client, translator_weights: Path) -> None:
    def installed(client) -> bool:
        return any(m.cls is DirectTranslate for m in client.app.user_middleware)

    assert installed(make_client(translator_weights))
    assert not installed(make_client(translator_weights, direct_translate=False))


def test_direct_path_counts_in_the_metrics_and_keeps_the_request_id(client) -> None:
    response = client.post(
        "/translate", files={"image": ("s.png", png_bytes(SKETCH))}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123"
    assert translate(client, b"").status_code == 422
    text = client.get("/metrics").text
    assert metric(text, "fgan_http_requests_total", route="/translate", method="POST", status="200") == 1
    assert metric(text, "fgan_http_requests_total", route="/translate", method="POST", status="422") == 1
    assert metric(text, "fgan_http_request_duration_seconds_count", route="/translate", method="POST") == 2
