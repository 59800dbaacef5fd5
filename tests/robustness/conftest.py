"""Fixtures of the robustness tests: tiny weights, in-process clients, and one real service on loopback.

Hypothesis runs under a bounded, deterministic profile by default (``ci``); set
HYPOTHESIS_PROFILE=deep for a longer, randomized search.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from service.app import create_app
from tests.robustness.support import LocalService, start_server
from tests.service.support import make_translator, settings_for, write_weights
from tests.service.support import wait_ready as wait_client_ready

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never fails on a new draw
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=5000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set every setting they rely on; FGAN_* variables of the shell must not leak in."""
    for name in list(os.environ):
        if name.startswith("FGAN_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny conditional generator + discriminator and a sketch translator (tests/service/support.py), no detector."""
    return write_weights(tmp_path_factory.mktemp("weights"), translator=make_translator())


@pytest.fixture
def make_client(weights_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """Build a started, ready in-process client with settings overrides; closed at teardown."""
    clients: list[TestClient] = []

    def build(weights: Path | None = None, **overrides: object) -> TestClient:
        client = TestClient(
            create_app(settings_for(weights or weights_dir, **overrides)), raise_server_exceptions=False
        )
        client.__enter__()
        clients.append(client)
        wait_client_ready(client)
        return client

    yield build
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def upload_paths(app: FastAPI) -> list[str]:
    """The routes that take an image upload form of one image (/classify, /explain, and /translate on a server with
    its model), by its schema. (/classify/batch, whose image is an array, answers a refused image in an entry of
    its own: tests/service/test_classify_batch.py runs this corpus through it.)"""
    paths = []
    for path, operations in app.openapi()["paths"].items():
        content = operations.get("post", {}).get("requestBody", {}).get("content", {})
        image = content.get("multipart/form-data", {}).get("schema", {}).get("properties", {}).get("image")
        if image is not None and image.get("type") != "array":
            paths.append(path)
    return sorted(paths)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[LocalService]:
    """One real ``python -m service`` on a loopback port, default limits, shared by the tests that need one."""
    log = tmp_path_factory.mktemp("served") / "service.log"
    server = start_server(weights_dir, log, FGAN_BATCH_TIMEOUT_MS="2")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
