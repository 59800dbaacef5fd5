"""Probes, metrics, request ids, the API key, /labels, /info, the OpenAPI docs, and startup failures."""

from __future__ import annotations

import re
import threading

import pytest
from fastapi.testclient import TestClient

import models
from models import NAMES
from service.app import create_app
from service.engine import Engine
from service.loading import StartupError
from tests.service.support import (
    make_detector,
    metric,
    png_bytes,
    sample_pixels,
    settings_for,
    wait_ready,
    write_weights,
)


def test_probes(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_until_the_warm_up_is_done(weights_dir, monkeypatch) -> None:
    release = threading.Event()
    warmup = Engine.warmup
    monkeypatch.setattr(Engine, "warmup", lambda self: (release.wait(10), warmup(self)))
    with TestClient(create_app(settings_for(weights_dir))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"error": "not_ready", "detail": "warming up the models"}
        assert client.get("/healthz").status_code == 200
        assert "fgan_ready 0.0" in client.get("/metrics").text
        release.set()
        wait_ready(client)
        assert "fgan_ready 1.0" in client.get("/metrics").text


def test_metrics_count_requests_latency_and_batches(client) -> None:
    client.get("/generate?label=1&seed=1")
    client.get("/generate?label=99")
    client.post("/classify", files={"image": ("x.png", png_bytes(sample_pixels()))}, data={"label": "1"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "fgan_http_requests_total", route="/generate", method="GET", status="200") == 1
    assert metric(text, "fgan_http_requests_total", route="/generate", method="GET", status="422") == 1
    assert metric(text, "fgan_http_requests_total", route="/classify", method="POST", status="200") == 1
    assert metric(text, "fgan_http_request_duration_seconds_count", route="/generate", method="GET") == 2
    assert metric(text, "fgan_engine_batch_size_count", model="generator") == 1
    assert metric(text, "fgan_engine_queue_wait_seconds_count", model="discriminator") == 1
    assert metric(text, "fgan_http_requests_in_flight") == 1  # this /metrics request itself
    assert "fgan_engine_queue_depth" in text


def test_request_id_is_returned_and_a_sane_incoming_one_is_kept(client) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert client.get("/healthz").headers["x-request-id"] != generated
    assert client.get("/labels", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    # Anything odd (too long, odd characters) is replaced rather than echoed into logs and headers.
    assert client.get("/labels", headers={"X-Request-ID": "a b<c>"}).headers["x-request-id"] != "a b<c>"
    assert client.get("/generate?n=0").headers["x-request-id"]  # on errors too


def test_errors_are_json_without_stack_traces(client, monkeypatch) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert client.delete("/generate").status_code == 405

    async def broken(self, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Engine, "generate", broken)
    response = client.get("/generate")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"]


@pytest.fixture
def keyed_client(make_client) -> TestClient:
    return make_client(api_key="s3cret-key")


@pytest.mark.parametrize("path", ["/generate?label=1", "/labels", "/info", "/docs", "/openapi.json"])
def test_api_key_is_required_when_set(keyed_client, path: str) -> None:
    response = keyed_client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "X-API-Key" in response.json()["detail"]
    assert keyed_client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
    assert keyed_client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert keyed_client.get(path, headers={"X-API-Key": "s3cret-key"}).status_code == 200
    assert keyed_client.get(path, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200


def test_api_key_guards_classify_and_leaves_probes_open(keyed_client) -> None:
    files = {"image": ("x.png", png_bytes(sample_pixels()))}
    assert keyed_client.post("/classify", files=files, data={"label": "1"}).status_code == 401
    ok = keyed_client.post("/classify", files=files, data={"label": "1"}, headers={"X-API-Key": "s3cret-key"})
    assert ok.status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert keyed_client.get(path).status_code == 200


def test_api_key_is_checked_before_the_body_is_read(keyed_client) -> None:
    huge = {"image": ("x.png", b"\0" * (2 * 1024 * 1024))}
    assert keyed_client.post("/classify", files=huge, data={"label": "1"}).status_code == 401
    headers = {"X-API-Key": "s3cret-key"}
    assert keyed_client.post("/classify", files=huge, data={"label": "1"}, headers=headers).status_code == 413


def test_openapi_declares_the_key_when_one_is_set(keyed_client, client) -> None:
    schema = keyed_client.get("/openapi.json", headers={"X-API-Key": "s3cret-key"}).json()
    assert set(schema["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    assert schema["paths"]["/classify"]["post"]["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert "401" in schema["paths"]["/generate"]["get"]["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_labels(client) -> None:
    assert client.get("/labels").json() == {"labels": [{"id": i, "name": n} for i, n in enumerate(NAMES)]}


def test_info_reports_models_device_and_versions(client) -> None:
    info = client.get("/info").json()
    assert info["device"] == "cpu"
    assert info["ready"] is True
    assert info["default_classifier"] == "discriminator"
    by_name = {m["name"]: m for m in info["models"]}
    assert set(by_name) == {"generator", "discriminator"}
    assert by_name["generator"]["class_name"] == "Generator"
    assert by_name["generator"]["config"] == {"z_dim": 8, "num_classes": 10, "channels": 4}
    assert by_name["generator"]["training"] == {"epochs": 0}
    assert by_name["discriminator"]["metrics"] == {"note": "test"}
    assert by_name["discriminator"]["label"] == "required"
    assert info["settings"]["max_upload_bytes"] == 1024 * 1024
    assert info["settings"]["torch_threads"] == 1
    assert info["settings"]["upload_memory_bytes"] == 64 * 2**20
    assert (info["settings"]["max_batch_images"], info["settings"]["max_batch_upload_bytes"]) == (64, 64 * 2**20)
    assert info["settings"]["forward_passes_at_once"] >= 1
    assert {"python", "torch", "fastapi"} <= set(info["versions"])


def test_openapi_documents_every_route_with_examples(client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/generate", "/classify", "/labels", "/info", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    form = schema["paths"]["/classify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["image"]["format"] == "binary"
    params = {p["name"]: p for p in schema["paths"]["/generate"]["get"]["parameters"]}
    assert {"label", "seed", "n", "scale", "format"} <= set(params)
    assert params["label"]["examples"]
    assert "examples" in schema["components"]["schemas"]["ClassifyResponse"]
    assert "swagger-ui" in client.get("/docs").text


LABELS = [*"0123456789", *models.NAMES]
IMAGE_TYPES = "image/png, image/jpeg, image/gif, image/bmp, image/tiff, image/webp"


def upload_body(schema: dict, path: str) -> dict:
    return schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]


@pytest.mark.parametrize("path", ["/classify", "/explain"])
def test_the_schema_says_what_an_upload_form_accepts(client, make_client, tmp_path, path: str) -> None:
    # Without a detector, the discriminator judges every upload, and it needs the class.
    body = upload_body(client.get("/openapi.json").json(), path)
    assert body["encoding"] == {"image": {"contentType": IMAGE_TYPES}}
    form = body["schema"]
    assert form["required"] == ["image", "label"]
    assert form["properties"]["label"]["enum"] == LABELS
    assert form["properties"]["model"]["enum"] == ["discriminator"]
    assert "allOf" not in form
    # With one, the detector is the default and takes images without a class; the discriminator still needs it.
    detector_client = make_client(write_weights(tmp_path / "weights", detector=make_detector()))
    form = upload_body(detector_client.get("/openapi.json").json(), path)["schema"]
    assert form["required"] == ["image"]
    assert form["properties"]["model"]["enum"] == ["detector", "discriminator"]
    (rule,) = form["allOf"]
    assert rule["if"] == {"properties": {"model": {"const": "discriminator"}}, "required": ["model"]}
    assert rule["then"] == {"required": ["label"]}
    # The query parameter stays for links, out of the schema: a form and a query naming two models would clash.
    names = [
        p["name"] for p in detector_client.get("/openapi.json").json()["paths"][path]["post"].get("parameters", [])
    ]
    assert "model" not in names


def test_the_schema_lists_the_labels_generate_accepts(client) -> None:
    params = {p["name"]: p for p in client.get("/openapi.json").json()["paths"]["/generate"]["get"]["parameters"]}
    assert params["label"]["schema"]["enum"] == LABELS and params["label"]["schema"]["type"] == "string"
    for label in LABELS:
        assert client.get("/generate", params={"label": label, "seed": 1}).status_code == 200, label


def test_docs_page_loads_swagger_ui_from_the_service_not_a_cdn(client, keyed_client) -> None:
    html = client.get("/docs").text
    scripts_and_styles = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/docs/assets/swagger-ui-bundle.js" in scripts_and_styles
    assert "/docs/assets/swagger-ui.css" in scripts_and_styles
    assert not [url for url in scripts_and_styles if "://" in url or url.startswith("//")], scripts_and_styles
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css")):
        response = client.get(f"/docs/assets/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert len(response.content) > 10_000
        # Swagger UI's own files are public, like the web page's; /docs and its schema keep the key.
        assert keyed_client.get(f"/docs/assets/{name}").status_code == 200
    assert keyed_client.get("/docs").status_code == 401
    missing = client.get("/docs/assets/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    # Only the files /docs loads: the rest of the package's folder is not served.
    for other in ("__init__.py", "favicon-32x32.png", "__pycache__", "__pycache__/__init__.cpython-311.pyc"):
        assert client.get(f"/docs/assets/{other}").status_code == 404, other


def test_bad_checkpoint_stops_startup_naming_the_file(tmp_path) -> None:
    weights = write_weights(tmp_path)
    (weights / "discriminator" / "model.safetensors").write_bytes(b"not safetensors")
    app = create_app(settings_for(weights))
    with pytest.raises(models.CheckpointError, match=r"discriminator/model\.safetensors"), TestClient(app):
        pass
    assert "model.safetensors" in app.state.startup_error


def test_mismatched_and_missing_checkpoints_stop_startup(tmp_path) -> None:
    weights = write_weights(tmp_path / "swapped")
    # A discriminator where the generator should be.
    (weights / "generator" / "config.json").replace(weights / "x.json")
    (weights / "discriminator" / "config.json").rename(weights / "generator" / "config.json")
    with (
        pytest.raises(models.CheckpointError, match="expected a Generator"),
        TestClient(create_app(settings_for(weights))),
    ):
        pass
    with (
        pytest.raises(models.CheckpointError, match="weights directory not found"),
        TestClient(create_app(settings_for(tmp_path / "nowhere"))),
    ):
        pass


def test_cuda_requested_without_cuda_stops_startup(weights_dir) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with (
        pytest.raises(StartupError, match="CUDA is not available"),
        TestClient(create_app(settings_for(weights_dir, device="cuda"))),
    ):
        pass
