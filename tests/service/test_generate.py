"""GET /generate: PNG bytes of the right size, reproducible from the seed, every option, every bad value."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from models import NAMES
from service.routes.generate import DirectGenerate, plain_png_query
from tests.service.support import decode_png, expected_images, make_generator, metric, write_weights


def test_png_of_the_requested_class_matches_the_generator(client) -> None:
    response = client.get("/generate", params={"label": 3, "seed": 42})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-seed"] == "42"
    assert response.headers["x-label"] == "3"
    assert response.headers["x-label-name"] == "Dress"
    pixels = decode_png(response.content)
    assert pixels.shape == (28, 28)
    np.testing.assert_array_equal(pixels, expected_images(make_generator(), [42], 3)[0])


def test_same_seed_and_label_give_identical_bytes(client) -> None:
    first = client.get("/generate?label=7&seed=123").content
    second = client.get("/generate?label=7&seed=123").content
    assert first == second
    assert client.get("/generate?label=7&seed=124").content != first
    assert client.get("/generate?label=2&seed=123").content != first


def test_label_may_be_a_class_name(client) -> None:
    by_id = client.get("/generate?label=9&seed=5")
    by_name = client.get("/generate", params={"label": "ankle boot", "seed": 5})
    assert by_name.status_code == 200
    assert by_name.headers["x-label"] == "9"
    assert by_name.content == by_id.content


def test_missing_seed_and_label_are_drawn_and_reported(client) -> None:
    response = client.get("/generate")
    assert response.status_code == 200
    seed, label = int(response.headers["x-seed"]), int(response.headers["x-label"])
    assert 0 <= seed < 2**31
    assert 0 <= label <= 9
    assert response.headers["x-label-name"] == NAMES[label]
    # The headers are enough to reproduce the image.
    again = client.get("/generate", params={"seed": seed, "label": label})
    assert again.content == response.content


def test_grid_of_n_images_tiles_seed_plus_i(client) -> None:
    response = client.get("/generate?label=1&seed=10&n=5")
    assert response.status_code == 200
    grid = decode_png(response.content)
    assert grid.shape == (2 * 28, 3 * 28)  # 5 images: 3 columns, 2 rows
    expected = expected_images(make_generator(), [10, 11, 12, 13, 14], 1)
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(grid[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28], expected[i])
    assert not grid[28:, 56:].any()  # the empty sixth cell is black


def test_scale_enlarges_with_nearest_neighbour(client) -> None:
    small = decode_png(client.get("/generate?label=4&seed=3").content)
    big = decode_png(client.get("/generate?label=4&seed=3&scale=4").content)
    assert big.shape == (112, 112)
    np.testing.assert_array_equal(big, np.repeat(np.repeat(small, 4, axis=0), 4, axis=1))


def test_largest_request_runs_in_batch_sized_chunks(make_client) -> None:
    client = make_client(max_batch_size=8)
    response = client.get("/generate?label=0&seed=0&n=100&scale=2")
    assert response.status_code == 200
    grid = decode_png(response.content)
    assert grid.shape == (10 * 56, 10 * 56)
    expected = expected_images(make_generator(), list(range(100)), 0)
    np.testing.assert_array_equal(grid[::2, ::2][-28:, -28:], expected[99])


def test_json_format_gives_base64_pngs(client) -> None:
    response = client.get("/generate?label=Sneaker&seed=7&n=3&scale=2&format=json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"label", "label_name", "seed", "images"}
    assert (body["label"], body["label_name"], body["seed"]) == (7, "Sneaker", 7)
    assert len(body["images"]) == 3
    expected = expected_images(make_generator(), [7, 8, 9], 7)
    for encoded, want in zip(body["images"], expected, strict=True):
        image = decode_png(base64.b64decode(encoded))
        assert image.shape == (56, 56)
        np.testing.assert_array_equal(image[::2, ::2], want)


def test_seed_wraps_at_two_to_the_32(client) -> None:
    response = client.get(f"/generate?label=0&seed={2**32 - 1}&n=2&format=json")
    assert response.status_code == 200
    images = [decode_png(base64.b64decode(i)) for i in response.json()["images"]]
    np.testing.assert_array_equal(images[1], expected_images(make_generator(), [0], 0)[0])


def test_unconditional_generator_ignores_the_label(make_client, tmp_path) -> None:
    weights = write_weights(tmp_path, generator=make_generator(num_classes=0))
    client = make_client(weights)
    response = client.get("/generate?seed=5")
    assert response.status_code == 200
    assert "x-label" not in response.headers
    np.testing.assert_array_equal(
        decode_png(response.content), expected_images(make_generator(num_classes=0), [5], None)[0]
    )
    assert client.get("/generate?seed=5&label=3").content == response.content
    assert client.get("/generate?seed=5&format=json").json()["label"] is None


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("label=10", ["label", "0-9", "Ankle boot"]),
        ("label=hat", ["hat", "T-shirt/top"]),
        ("label=", ["empty", "0-9"]),
        ("label=-1", ["out of range", "0-9"]),
        ("n=0", ["'n'", "1 to 100"]),
        ("n=101", ["'n'", "1 to 100"]),
        ("n=two", ["'n'", "integer"]),
        ("scale=0", ["'scale'", "1 to 16"]),
        ("scale=17", ["'scale'", "1 to 16"]),
        ("seed=-1", ["'seed'", "0 to 4294967295"]),
        ("seed=4294967296", ["'seed'", "0 to 4294967295"]),
        ("seed=1.5", ["'seed'", "integer"]),
        ("format=gif", ["'format'", "'png' or 'json'"]),
        ("truncation=0", ["'truncation'", "greater than 0", "0 < psi <= 1"]),
        ("truncation=-0.5", ["'truncation'", "0 < psi <= 1"]),
        ("truncation=1.01", ["'truncation'", "less than or equal to 1", "0 < psi <= 1"]),
        ("truncation=nan", ["'truncation'", "finite", "0 < psi <= 1"]),
        ("truncation=inf", ["'truncation'", "0 < psi <= 1"]),
        ("truncation=abc", ["'truncation'", "number", "0 < psi <= 1"]),
        ("truncation=", ["'truncation'", "0 < psi <= 1"]),
    ],
)
def test_bad_parameters_get_422_saying_what_is_accepted(client, query: str, names: list[str]) -> None:
    response = client.get(f"/generate?{query}")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input"
    for name in names:
        assert name in body["detail"]


# Truncation: psi = 1 is sampling as trained, psi < 1 pulls each latent toward the mean latent.

# The sha256 of answers of the tiny test generator before truncation existed (the same torch, the same tiny
# weights): psi = 1, given or not, must keep every byte of them.
TODAYS_BYTES = {
    "label=3&seed=42": "62944198657abf65b07b674d5836749db172e17d7a8fb6c80ba3536e16b982be",
    "label=Bag&seed=1&n=16&scale=2": "2ffa1b60c15cc0c53c67982f0d7ff4a3f5a1fbf762363e829cfb77b2cbb7f4f6",
    "label=0&seed=4294967295&n=2&format=json": "589668d9ff40bcc4cb8d1d62da0e582ab73ad5eba0b0da96951c3a5e206baf1d",
}


@pytest.mark.parametrize("direct_generate", [True, False])
@pytest.mark.parametrize("psi", [None, "1", "1.0", "1.00"])
def test_truncation_one_gives_todays_bytes(make_client, direct_generate: bool, psi: str | None) -> None:
    client = make_client(direct_generate=direct_generate)
    for query, digest in TODAYS_BYTES.items():
        response = client.get(f"/generate?{query}" + ("" if psi is None else f"&truncation={psi}"))
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == digest, query
        assert response.headers["x-truncation"] == "1.0"


@pytest.mark.parametrize("psi", [0.8, 0.6, 0.3])
def test_truncation_below_one_is_the_scaled_latent_and_deterministic(client, psi: float) -> None:
    response = client.get("/generate", params={"label": 6, "seed": 21, "n": 4, "truncation": psi, "format": "json"})
    assert response.status_code == 200
    assert response.headers["x-truncation"] == repr(psi)
    got = np.stack([decode_png(base64.b64decode(i)) for i in response.json()["images"]])
    np.testing.assert_array_equal(got, expected_images(make_generator(), [21, 22, 23, 24], 6, psi))
    again = client.get("/generate", params={"label": 6, "seed": 21, "n": 4, "truncation": psi, "format": "json"})
    assert again.content == response.content
    as_trained = client.get("/generate", params={"label": 6, "seed": 21, "n": 4, "format": "json"})
    assert as_trained.json()["images"] != response.json()["images"]


def test_truncation_header_on_png_and_json(client) -> None:
    png = client.get("/generate?label=2&seed=3&truncation=0.7")
    assert (png.status_code, png.headers["x-truncation"], png.headers["x-seed"]) == (200, "0.7", "3")
    body = client.get("/generate?label=2&seed=3&truncation=0.7&format=json")
    assert body.headers["x-truncation"] == "0.7"
    assert set(body.json()) == {"label", "label_name", "seed", "images"}  # the JSON body is as before
    assert decode_png(base64.b64decode(body.json()["images"][0])).tolist() == decode_png(png.content).tolist()


def test_truncation_is_documented_with_its_range(client) -> None:
    (param,) = [
        p
        for p in client.get("/openapi.json").json()["paths"]["/generate"]["get"]["parameters"]
        if p["name"] == "truncation"
    ]
    assert param["schema"]["exclusiveMinimum"] == 0 and param["schema"]["maximum"] == 1
    assert param["schema"]["default"] == 1
    assert "0 < psi <= 1" in param["description"]


def test_png_is_a_valid_8_bit_grayscale_file(client) -> None:
    data = client.get("/generate?label=5&seed=1").content
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.verify()
    assert (image.size, image.mode) == ((28, 28), "L")


# The direct path (routes/generate.py, DirectGenerate) and the FastAPI route must answer alike.

PLAIN_QUERIES = [
    "label=3&seed=42",
    "label=Dress&seed=0",
    "label=t-shirt%2Ftop&seed=7",  # a name with '/', percent-encoded
    "seed=4294967295&label=0",
    "label=1&seed=9&n=4&scale=2",
    "format=png&label=2&seed=5&n=1&scale=1",
    "label=4&seed=11&n=100",
    "label=8&seed=3&scale=16",
    "label=3&seed=42&truncation=0.7",
    "label=3&seed=42&truncation=1",
    "truncation=1.0&label=5&seed=6&n=3",
    "label=3&seed=42&truncation=0.05",
]
LEFT_TO_FASTAPI = [
    "label=3&label=4&seed=1",  # a parameter twice
    "label=3&seed=007",  # not plain digits (FastAPI reads it as 7)
    "label=3&seed=%2B7",
    "label=3&seed=7&extra=1",  # an unknown parameter (FastAPI ignores it)
    "label=3&seed=7&format=json",
    "label=10&seed=1",  # the errors, worded by the route
    "label=&seed=1",
    "label=2&seed=-1",
    "label=2&seed=4294967296",
    "label=2&seed=1&n=0",
    "label=2&seed=1&scale=17",
    "label=2&seed=1&format=gif",
    "label=3&seed=42&truncation=.7",  # not written plainly (FastAPI reads it as 0.7)
    "label=3&seed=42&truncation=7e-1",
    "label=3&seed=42&truncation=0",  # out of range: the route words the 422
    "label=3&seed=42&truncation=0.0",
    "label=3&seed=42&truncation=1.5",
    "label=3&seed=42&truncation=nan",
    "label=3&seed=42&truncation=",
]


def _answer(response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
    return response.status_code, headers, response.content


def test_which_queries_the_direct_path_answers() -> None:
    one = {"truncation": 1.0}
    assert plain_png_query(b"label=3&seed=42") == {"label": 3, "seed": 42, "n": 1, "scale": 1, **one}
    assert plain_png_query(b"") == {"label": None, "seed": None, "n": 1, "scale": 1, **one}
    assert plain_png_query(b"label=t-shirt%2Ftop&n=100&scale=16") == {
        "label": 0,
        "seed": None,
        "n": 100,
        "scale": 16,
        **one,
    }
    assert plain_png_query(b"seed=1&truncation=0.75")["truncation"] == 0.75
    for query in PLAIN_QUERIES:
        assert plain_png_query(query.encode()) is not None, query
    for query in LEFT_TO_FASTAPI:
        assert plain_png_query(query.encode()) is None, query


@pytest.mark.parametrize("query", PLAIN_QUERIES + LEFT_TO_FASTAPI)
def test_direct_path_and_fastapi_route_answer_alike(make_client, query: str) -> None:
    direct = make_client()
    routed = make_client(direct_generate=False)
    assert _answer(direct.get(f"/generate?{query}")) == _answer(routed.get(f"/generate?{query}"))


def test_direct_path_is_installed_unless_turned_off(make_client) -> None:
    def installed(client) -> bool:
        return any(m.cls is DirectGenerate for m in client.app.user_middleware)

    assert installed(make_client())
    assert not installed(make_client(direct_generate=False))


def test_direct_path_counts_in_the_metrics_and_keeps_the_request_id(client) -> None:
    response = client.get("/generate?label=1&seed=1", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123"
    text = client.get("/metrics").text
    assert metric(text, "fgan_http_requests_total", route="/generate", method="GET", status="200") == 1
