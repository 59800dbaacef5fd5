"""Security: the API key, what answers may reveal, and what upload file names may touch.

- With FGAN_API_KEY set, every operation of the schema (and /docs, /openapi.json) answers 401
  without the key or with a wrong one, and serves with it; the probes and metrics stay open.
- No answer carries a stack trace or a path of this machine, even when a route fails inside.
- An upload's file name never reaches the filesystem: every filesystem call the process
  makes while serving uploads is recorded (a Python audit hook) and none mentions it.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.robustness.conftest import upload_paths
from tests.robustness.corpus import PIXELS, encode
from tests.robustness.support import ROOT, LocalService, check_answer, leaks
from tests.service.support import png_bytes

KEY = "correct-horse-battery-staple"
PROBES = ("/healthz", "/readyz", "/metrics")


def _operations(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every operation in the schema, plus the docs."""
    schema = client.get("/openapi.json", headers={"X-API-Key": KEY}).json()
    found = [(method.upper(), path) for path, ops in schema["paths"].items() for method in ops]
    return [*found, ("GET", "/openapi.json"), ("GET", "/docs")]


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if method == "POST":  # a valid upload, so that only the key decides
        files = {"image": ("x.png", png_bytes(PIXELS), "image/png")}
        return client.post(path, files=files, data={"label": "3"}, headers=headers)
    return client.request(method, path, headers=headers)


def test_every_operation_needs_the_key_and_probes_stay_open(make_client) -> None:
    client = make_client(api_key=KEY)
    operations = _operations(client)
    assert ("POST", "/classify") in operations and ("GET", "/generate") in operations
    wrong = [
        {},
        {"X-API-Key": "wrong"},
        {"X-API-Key": KEY + "x"},
        {"X-API-Key": KEY[:-1]},
        {"X-API-Key": ""},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {KEY.upper()}"},
        {"x-api-key": KEY.encode().hex()},
    ]
    right = [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}]
    for method, path in operations:
        for headers in wrong:
            response = _call(client, method, path, headers)
            check_answer(response)
            if path in PROBES:
                assert response.status_code == 200, (path, headers)
            else:
                assert response.status_code == 401, (method, path, headers, response.status_code)
                assert response.headers["www-authenticate"] == "Bearer"
                assert KEY not in response.text
        for headers in right:
            response = _call(client, method, path, headers)
            check_answer(response)
            assert response.status_code == 200, (method, path, headers, response.text[:200])


def test_the_key_is_checked_before_the_body_is_read(make_client) -> None:
    client = make_client(api_key=KEY, max_upload_bytes=64 * 1024)
    # Over the upload limit, and a body that is not even multipart: still 401, not 413 or 415.
    response = client.post("/classify", content=b"\0" * (200 * 1024), headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


def test_no_trace_or_path_when_a_route_fails_inside(make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client()
    engine = client.app.state.engine

    async def explode(*args, **kwargs):
        raise RuntimeError(f'Traceback (most recent call last):\n  File "{ROOT}/service/engine.py", line 1')

    monkeypatch.setattr(engine, "generate", explode)
    monkeypatch.setattr(engine, "classify", explode)
    for response in (
        client.get("/generate?label=1"),
        client.post("/classify", files={"image": ("x.png", png_bytes(PIXELS), "image/png")}, data={"label": "1"}),
    ):
        assert response.status_code == 500
        check_answer(response)  # JSON {error, detail}, and no leak marker anywhere
        assert response.json() == {
            "error": "internal_error",
            "detail": "internal error; the X-Request-ID header names it in the logs",
        }


def test_info_and_docs_reveal_no_paths(client: TestClient) -> None:
    for path in ("/info", "/openapi.json", "/docs", "/labels", "/metrics"):
        response = client.get(path)
        assert response.status_code == 200
        assert not leaks(response.text), (path, leaks(response.text))


def test_request_ids_and_origins_are_not_reflected_blindly(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>", "Origin": "https://evil"})
    assert response.headers["x-request-id"] != "<script>alert(1)</script>"
    assert "access-control-allow-origin" not in response.headers  # no CORS: other origins cannot read answers
    assert client.get("/healthz", headers={"X-Request-ID": "trace-42.a"}).headers["x-request-id"] == "trace-42.a"


class _FilesystemAudit:
    """Records the process's filesystem audit events whose arguments mention ``marker``."""

    EVENTS = ("open", "os.", "shutil.", "tempfile.", "glob.", "pathlib.")

    def __init__(self) -> None:
        self.marker = ""
        self.active = False
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or not event.startswith(self.EVENTS):
            return
        text = " ".join(os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else "" for a in args)
        with self._lock:
            if self.marker in text:
                self.seen.append((event, text[:200]))


_AUDIT = _FilesystemAudit()
sys.addaudithook(_AUDIT)  # hooks cannot be removed; it records only while a test activates it


def test_upload_file_names_never_reach_the_filesystem(client: TestClient, tmp_path: Path) -> None:
    marker = f"fgan-marker-{uuid.uuid4().hex}"
    names = [
        f"{marker}.png",
        f"../../../../tmp/{marker}.png",
        f"/tmp/{marker}",
        f"{tmp_path}/{marker}.png",
        f"..\\..\\{marker}.png",
        f"{marker}\0.png",
        f"{marker}/../../x.png",
    ]
    image = encode(Image.fromarray(PIXELS), "PNG")
    before = set(Path("/tmp").iterdir())
    _AUDIT.marker, _AUDIT.seen, _AUDIT.active = marker, [], True
    try:
        probe = tmp_path / "probe"
        probe.mkdir()
        (probe / marker).write_bytes(b"")  # the audit must see this one, or it sees nothing
        assert _AUDIT.seen, "the audit hook records nothing"
        _AUDIT.seen = []
        for path in upload_paths(client.app):
            for name in names:
                response = client.post(path, files={"image": (name, image, "image/png")}, data={"label": "3"})
                assert response.status_code == 200, response.text
                big = client.post(
                    path, files={"image": (name, image + b"\0" * 600_000, "image/png")}, data={"label": "3"}
                )
                assert big.status_code == 200, big.text  # a body large enough that a form parser would spool it
    finally:
        _AUDIT.active = False
    assert not _AUDIT.seen, f"file names reached the filesystem: {_AUDIT.seen}"
    created = {p for p in set(Path("/tmp").iterdir()) - before if marker in p.name}
    assert not created and not list(tmp_path.glob(f"*{marker}*"))


@pytest.mark.slow
def test_upload_file_names_never_reach_the_filesystem_of_a_real_server(served: LocalService) -> None:
    marker = f"fgan-marker-{uuid.uuid4().hex}"
    image = png_bytes(PIXELS)
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for name in (f"{marker}.png", f"../../../../tmp/{marker}", f"/tmp/{marker}.png"):
            response = http.post("/classify", files={"image": (name, image, "image/png")}, data={"label": "3"})
            assert response.status_code == 200
    # The server's open files while idle, and /tmp: nothing named after an upload.
    fds = Path(f"/proc/{served.pid}/fd")
    if fds.is_dir():
        targets = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
        assert not [t for t in targets if marker in t]
    assert not [p for p in Path("/tmp").iterdir() if marker in p.name]
