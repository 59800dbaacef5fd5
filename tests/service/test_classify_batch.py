"""POST /classify/batch: each entry the bytes of /classify's answer for its image alone, a bad image costing
only its own entry, the request's limits, and its images sharing forward passes with single requests."""

from __future__ import annotations

import pytest
import torch

from service.settings import Settings
from tests.robustness.corpus import LABEL, upload_cases
from tests.service.support import (
    expected_p_real,
    expected_verdict,
    make_detector,
    make_discriminator,
    metric,
    png_bytes,
    sample_pixels,
    write_weights,
)
from tests.service.test_classify import BAD_IMAGES, classify
from tests.service.test_engine import gather, serving

IMAGES = [png_bytes(sample_pixels(seed)) for seed in range(6)]
LABELS = ["8", "1", "Bag", "3", "9", "0"]


def batch(client, images: list[bytes], labels: list[str] | None = None, query: str = "", **fields: str):
    files = [("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    files = files or [("notes", ("notes.txt", b"no images here", "text/plain"))]  # still a multipart form
    data: dict[str, object] = dict(fields)
    if labels is not None:
        data["label"] = labels
    return client.post(f"/classify/batch{query}", files=files, data=data)


def test_each_entry_is_the_bytes_of_the_single_answer(client) -> None:
    singles = [classify(client, image, label=label) for image, label in zip(IMAGES, LABELS, strict=True)]
    assert all(r.status_code == 200 for r in singles)
    response = batch(client, IMAGES, LABELS)
    assert response.status_code == 200
    assert response.content == b'{"results":[' + b",".join(r.content for r in singles) + b"]}"
    assert response.headers["x-model"] == singles[0].headers["x-model"]
    expected = [
        expected_verdict(expected_p_real(make_discriminator(), sample_pixels(s), i))
        for s, i in zip(range(6), (8, 1, 8, 3, 9, 0), strict=True)
    ]
    assert response.json()["results"] == expected


def test_a_corrupt_image_in_the_middle_costs_only_its_own_entry(client) -> None:
    corrupt = IMAGES[1][:60]
    response = batch(client, [IMAGES[0], corrupt, IMAGES[2]], ["8", "1", "8"])
    assert response.status_code == 200
    first, middle, last = response.json()["results"]
    assert first == classify(client, IMAGES[0], label="8").json()
    assert last == classify(client, IMAGES[2], label="8").json()
    assert middle["error"] == "invalid_input" and "truncated or corrupt" in middle["detail"]


@pytest.mark.parametrize(("data", "status", "words"), BAD_IMAGES.values(), ids=list(BAD_IMAGES))
def test_every_image_classify_refuses_gets_the_same_answer_as_an_entry(client, data, status, words) -> None:
    alone = classify(client, data, label="8")
    assert alone.status_code == status
    response = batch(client, [IMAGES[0], data], ["8", "8"])
    assert response.status_code == 200
    assert response.json()["results"][1] == alone.json()
    assert response.json()["results"][0] == classify(client, IMAGES[0], label="8").json()


def test_a_bad_label_is_the_entry_of_its_image(client) -> None:
    alone = classify(client, IMAGES[1], label="Hat")
    assert alone.status_code == 422
    results = batch(client, IMAGES[:2], ["8", "Hat"]).json()["results"]
    assert results[1] == alone.json() and "unknown label 'Hat'" in results[1]["detail"]
    assert results[0] == classify(client, IMAGES[0], label="8").json()


def test_an_image_over_the_upload_limit_is_an_entry_and_a_body_over_the_batch_limit_413(make_client) -> None:
    client = make_client(max_upload_bytes=64 * 1024)
    big = b"\0" * (100 * 1024)
    assert classify(client, big, label="1").json()["error"] == "payload_too_large"
    results = batch(client, [IMAGES[0], big], ["1", "1"]).json()["results"]
    assert results[1]["error"] == "payload_too_large" and "65536 byte upload limit" in results[1]["detail"]
    assert results[0] == classify(client, IMAGES[0], label="1").json()

    client = make_client(max_upload_bytes=4096, max_batch_upload_bytes=8192)
    response = batch(client, IMAGES[:1] * 3, ["1"] * 3)
    assert response.status_code == 200  # three small images: well under the limit
    response = batch(client, [b"\0" * 4000] * 3, ["1"] * 3)
    assert response.status_code == 413
    assert "8192 byte limit of a batch (FGAN_MAX_BATCH_UPLOAD_BYTES)" in response.json()["detail"]


@pytest.mark.parametrize(
    ("images", "labels", "fields", "words"),
    [
        (0, None, {"label": "8"}, ["no 'image' field (fields sent: label, notes)", "-F image=@a.png -F image=@b.png"]),
        (65, None, {}, ["more than 64 images", "FGAN_MAX_BATCH_IMAGES"]),
        (3, ["1", "2"], {}, ["3 images and 2 labels", "one 'label' field per image"]),
        (3, ["1", "2", "3", "4"], {}, ["3 images and 4 labels"]),
        (2, None, {}, ["needs the image's class"]),
        (2, ["1", "2"], {"model": "hat"}, ["unknown model 'hat'"]),
        (2, ["1", "2"], {"model": ["discriminator", "discriminator"]}, ["2 'model' fields"]),
    ],
    ids=["empty", "too-many", "too-few-labels", "too-many-labels", "no-labels", "unknown-model", "two-models"],
)
def test_what_is_wrong_with_the_request_is_422_for_the_request(client, images, labels, fields, words) -> None:
    response = batch(client, (IMAGES * 11)[:images], labels, **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    for word in words:
        assert word in response.json()["detail"]


def test_not_a_form_is_415(client) -> None:
    response = client.post("/classify/batch", content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    assert "…/classify/batch" in response.json()["detail"]


def test_the_most_images_is_a_setting(make_client) -> None:
    client = make_client(max_batch_images=2)
    assert batch(client, IMAGES[:2], ["1", "2"]).status_code == 200
    response = batch(client, IMAGES[:3], ["1", "2", "3"])
    assert response.status_code == 422 and "more than 2 images" in response.json()["detail"]
    form = client.get("/openapi.json").json()["paths"]["/classify/batch"]["post"]["requestBody"]
    schema = form["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["image"]["maxItems"] == 2


def test_the_batch_body_limit_follows_the_upload_settings() -> None:
    assert Settings().batch_upload_bytes == 64 * 2**20  # 64 images of 1 MiB, within the 64 MiB upload budget
    assert Settings(max_upload_bytes=4096, max_batch_images=8).batch_upload_bytes == 8 * 4096
    assert Settings(max_upload_bytes=2**20, upload_memory_bytes=8 * 2**20).batch_upload_bytes == 8 * 2**20
    for bad in ({"max_batch_upload_bytes": 2048, "max_upload_bytes": 4096}, {"max_batch_upload_bytes": 2**26 + 1}):
        with pytest.raises(ValueError, match=r"FGAN_MAX_BATCH_UPLOAD_BYTES|less than or equal"):
            Settings(**bad)


def test_the_detector_judges_by_default_and_model_picks_another(make_client, tmp_path) -> None:
    weights = write_weights(tmp_path, detector=make_detector(), detector_metrics={"temperature": 2.0})
    client = make_client(weights)
    results = batch(client, IMAGES[:3]).json()["results"]  # the detector needs no label
    assert results == [classify(client, image).json() for image in IMAGES[:3]]
    assert results[0] == expected_verdict(expected_p_real(make_detector(), sample_pixels(0), None, temperature=2.0))
    by_field = batch(client, IMAGES[:2], ["8", "1"], model="discriminator")
    by_query = batch(client, IMAGES[:2], ["8", "1"], query="?model=discriminator")
    alone = [
        classify(client, image, label=label, model="discriminator").json()
        for image, label in zip(IMAGES[:2], ["8", "1"], strict=True)
    ]
    assert by_field.json()["results"] == by_query.json()["results"] == alone
    assert by_field.headers["x-model"].startswith("discriminator@")


def test_the_docs_describe_the_batch_with_an_example(client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/classify/batch"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["image"]["type"] == "array" and form["properties"]["image"]["maxItems"] == 64
    assert form["required"] == ["image", "label"]  # the discriminator, this server's default, needs them
    response = operation["responses"]["200"]
    assert "X-Model" in response["headers"]
    assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ClassifyBatchResponse")
    (example,) = schema["components"]["schemas"]["ClassifyBatchResponse"]["examples"]
    assert {"label", "confidence"} in [set(entry) for entry in example["results"]]  # a verdict and an error
    assert {"error", "detail"} in [set(entry) for entry in example["results"]]
    assert {"413", "415", "422", "503"} <= operation["responses"].keys()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_batch_shares_forward_passes_with_single_requests(tmp_path) -> None:
    weights = write_weights(tmp_path)
    async with serving(weights, max_batch_size=64, batch_timeout_ms=300) as (_, client):

        def single(i: int):
            files = {"image": ("x.png", IMAGES[i])}
            return lambda: client.post("/classify", files=files, data={"label": LABELS[i]})

        def many():
            files = [("image", ("x.png", image)) for image in IMAGES[3:]]
            return client.post("/classify/batch", files=files, data={"label": LABELS[3:]})

        responses = await gather(single(0), single(1), single(2), many)
        assert [r.status_code for r in responses] == [200] * 4
        expected = [
            expected_verdict(expected_p_real(make_discriminator(), sample_pixels(i), j))
            for i, j in zip(range(6), (8, 1, 8, 3, 9, 0), strict=True)
        ]
        assert [r.json() for r in responses[:3]] + responses[3].json()["results"] == expected
        text = (await client.get("/metrics")).text
        passes = metric(text, "fgan_engine_batch_size_count", model="discriminator")
        rows = metric(text, "fgan_engine_batch_size_sum", model="discriminator")
        assert rows == 6 and passes < 4  # four requests' six images in fewer passes than requests


def test_nothing_is_left_waiting_after_a_batch(client) -> None:
    assert batch(client, IMAGES, LABELS).status_code == 200
    assert all(b.busy == 0 and b.depth == 0 for b in client.app.state.engine.batchers)


def test_an_image_the_model_gives_no_verdict_on_is_an_internal_error_entry(client) -> None:
    served = client.app.state.engine.models.classifiers["discriminator"]
    inner = served.module

    class NanForTheSecond(torch.nn.Module):
        config = inner.config

        def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            # The batch's three images run in one pass: the second gets no probability.
            return inner(x, y) * torch.tensor([float("nan") if i == 1 else 1.0 for i in range(x.shape[0])])

    served.module = NanForTheSecond()
    try:
        results = batch(client, IMAGES[:3], ["8", "1", "8"]).json()["results"]
    finally:
        served.module = inner
    assert results[1]["error"] == "internal_error" and "X-Request-ID" in results[1]["detail"]
    assert results[0] == classify(client, IMAGES[0], label="8").json()
    assert results[2] == classify(client, IMAGES[2], label="8").json()


# The bad-input corpus's image and label cases for /classify (tests/robustness/corpus.py), each sent again as the
# second image of a batch: the entry is /classify's answer for it alone.
PER_IMAGE = [
    case
    for case in upload_cases("/classify")
    if case.files and (":image:" in case.id or ":label-" in case.id) and dict(case.data).keys() <= {"label"}
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", PER_IMAGE, ids=[case.id for case in PER_IMAGE])
def test_each_upload_classify_refuses_is_refused_alike_inside_a_batch(client, case) -> None:
    ((_, (_, image, _)),) = case.files
    label = dict(case.data).get("label", LABEL)
    alone = client.request(case.method, case.path, **case.request_kwargs())
    response = batch(client, [IMAGES[0], image], ["8", label])
    assert response.status_code == 200, response.text
    first, entry = response.json()["results"]
    assert first == classify(client, IMAGES[0], label="8").json()
    if alone.status_code == 413:  # the body of /classify was over the limit: here, the image is
        assert entry["error"] == alone.json()["error"] == "payload_too_large"
        assert "FGAN_MAX_UPLOAD_BYTES" in entry["detail"]
    else:
        assert entry == alone.json(), case.id
