"""The admission limit (service/limits.py): beyond what the engines hold, 503 + Retry-After at once; probes pass."""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import pytest

from service.limits import MIN_ADMITTED, RequestLimitsMiddleware, admission_limit
from service.observability import InFlight, Metrics
from tests.robustness.support import metric_total
from tests.service.support import settings_for


def _state(tmp_path, in_flight: int, models: int = 2, **settings: object) -> SimpleNamespace:
    counter = InFlight()
    counter.count = in_flight
    engine = SimpleNamespace(batchers=[object()] * models)
    return SimpleNamespace(
        settings=settings_for(tmp_path, **settings), engine=engine, in_flight=counter, metrics=Metrics()
    )


async def _call(state: SimpleNamespace, path: str) -> tuple[int, dict[bytes, bytes], bool]:
    reached = False
    sent: list[dict] = []

    async def inner(scope, receive, send) -> None:
        nonlocal reached
        reached = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "app": SimpleNamespace(state=state)}
    await RequestLimitsMiddleware(inner, max_bytes=1 << 20)(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), reached


def test_the_limit_is_what_the_engines_hold(tmp_path) -> None:
    assert admission_limit(_state(tmp_path, 0, queue_limit=256, max_batch_size=32)) == 2 * 288
    assert admission_limit(_state(tmp_path, 0, models=3, queue_limit=100, max_batch_size=28)) == 3 * 128
    assert admission_limit(_state(tmp_path, 0, queue_limit=1, max_batch_size=1)) == MIN_ADMITTED


@pytest.mark.parametrize(("in_flight", "admitted"), [(1, True), (192, True), (193, False), (5000, False)])
def test_requests_beyond_the_limit_get_503_with_retry_after(tmp_path, in_flight: int, admitted: bool) -> None:
    state = _state(tmp_path, in_flight, queue_limit=64, max_batch_size=32, retry_after_s=3)  # limit 192
    status, headers, reached = anyio.run(_call, state, "/generate")
    assert reached is admitted
    if admitted:
        assert status == 200
    else:
        assert status == 503 and headers[b"retry-after"] == b"3"
    rejected = metric_total(
        state.metrics.render().decode(), "fgan_engine_rejected_total", model="server", reason="in_flight_limit"
    )
    assert rejected == (0 if admitted else 1)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_are_always_admitted(tmp_path, path: str) -> None:
    status, _, reached = anyio.run(_call, _state(tmp_path, 10_000), path)
    assert status == 200 and reached


@pytest.mark.parametrize("direct_generate", [True, False], ids=["direct-path", "fastapi-route"])
def test_every_503_carries_retry_after(make_client, monkeypatch: pytest.MonkeyPatch, direct_generate: bool) -> None:
    """Even an Overloaded raised without headers (a future route, say) gets Retry-After."""
    from service.errors import Overloaded

    client = make_client(retry_after_s=7, direct_generate=direct_generate)

    async def busy(*args, **kwargs):
        raise Overloaded("busy")

    monkeypatch.setattr(client.app.state.engine, "generate", busy)
    response = client.get("/generate?label=1")
    assert response.status_code == 503 and response.headers["retry-after"] == "7"
    assert response.json() == {"error": "overloaded", "detail": "busy"}


# The upload budget --------------------------------------------------------------------------------------


def test_bodies_are_admitted_up_to_the_upload_budget_in_bytes() -> None:
    """Each request with a body holds its Content-Length (a chunked one: the upload limit) until answered."""

    async def main() -> None:
        release = anyio.Event()
        reached: list[str] = []
        limits: RequestLimitsMiddleware

        async def inner(scope, receive, send) -> None:
            reached.append(scope["path"])
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        limits = RequestLimitsMiddleware(inner, max_bytes=1000, upload_memory=2500)
        answers: dict[str, tuple[int, bytes]] = {}

        async def call(name: str, headers: list[tuple[bytes, bytes]], method: str = "POST") -> None:
            sent: list[dict] = []

            async def receive() -> dict:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict) -> None:
                sent.append(message)

            scope = {"type": "http", "method": method, "path": f"/{name}", "headers": headers}
            await limits(scope, receive, send)
            answers[name] = (sent[0]["status"], dict(sent[0]["headers"]).get(b"retry-after", b""))

        async with anyio.create_task_group() as group:
            group.start_soon(call, "declared", [(b"content-length", b"1000")])
            group.start_soon(call, "chunked", [(b"transfer-encoding", b"chunked")])  # held as the upload limit
            await anyio.sleep(0.05)
            assert limits.held == 2000
            await call("over", [(b"content-length", b"600")])  # 2600 > 2500: refused at once
            assert answers["over"] == (503, b"1")
            group.start_soon(call, "fits", [(b"content-length", b"500")])  # 2500: admitted
            group.start_soon(call, "no-body", [], "GET")  # holds nothing
            await anyio.sleep(0.05)
            assert limits.held == 2500
            release.set()
        assert limits.held == 0  # every answered request gave its bytes back
        assert sorted(reached) == ["/chunked", "/declared", "/fits", "/no-body"]
        assert {name: status for name, (status, _) in answers.items()} == {
            "declared": 200,
            "chunked": 200,
            "over": 503,
            "fits": 200,
            "no-body": 200,
        }

    anyio.run(main)


def test_the_upload_budget_refusal_says_what_is_held(make_client) -> None:
    client = make_client(max_upload_bytes=4096, upload_memory_bytes=4096)
    limits = client.app.middleware_stack
    while not isinstance(limits, RequestLimitsMiddleware):
        limits = limits.app
    limits.held = 4000  # as if a large upload were in progress
    response = client.post("/classify", files={"image": ("x.png", b"x" * 200, "image/png")}, data={"label": "1"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "FGAN_UPLOAD_MEMORY_BYTES" in response.json()["detail"] and "4000 bytes" in response.json()["detail"]
    rejected = metric_total(client.get("/metrics").text, "fgan_engine_rejected_total", reason="upload_memory")
    assert rejected == 1
    assert client.get("/generate?label=1").status_code == 200  # a request without a body is not held back
    limits.held = 0
