"""Fixtures for the service tests: a tiny weights directory and started, ready TestClients."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.support import settings_for, wait_ready, write_weights


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set every setting they rely on; FGAN_* variables of the shell must not leak in."""
    for name in list(os.environ):
        if name.startswith("FGAN_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generator + discriminator, conditional, no detector."""
    return write_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def make_client(weights_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """Build a started TestClient (lifespan on, ready) with settings overrides; closed at teardown."""
    stack: list[TestClient] = []

    def build(weights: Path | None = None, **overrides: object) -> TestClient:
        app = create_app(settings_for(weights or weights_dir, **overrides))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        wait_ready(client)
        return client

    yield build
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A ready client on the default tiny weights."""
    return make_client()
