"""The image's start command and the healthcheck commands, exactly as the Dockerfile and compose file write
them, run against a real service process on loopback. A typo in either file fails here.

No Docker engine runs in CI, so the container is stood in for by the environment it would have: the
Dockerfile's ENV and compose's environment (with defaults), then only what loopback needs (host, a free
port) and tiny weights that the test saves itself.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.local_service import LocalService, ServiceFailed, free_port

ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT_S = 120  # imports torch and loads the models, on two shared CPU cores
SHUTDOWN_TIMEOUT_S = 20


def _resolve(argv: list[str]) -> list[str]:
    """argv[0] as the image's PATH would find it, here: this interpreter, or a script installed beside it."""
    name = argv[0]
    if name in ("python", "python3", "python3.11"):
        return [sys.executable, *argv[1:]]
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name!r} is not installed: is the project installed (pip install -e .)?"
    return [found, *argv[1:]]


def _get(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_resolve(argv), env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights directory as the service expects it, with tiny untrained models."""
    from models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, save_model

    root = tmp_path_factory.mktemp("weights")
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), root / "generator")
    save_model(Discriminator(DiscriminatorConfig(channels=4)), root / "discriminator")
    return root


@pytest.fixture(scope="module")
def container_env(runtime, compose, tiny_weights: Path) -> dict[str, str]:
    """The container's environment: image ENV, then compose's, then the loopback overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FGAN_")}
    env.update({k: v for k, v in runtime.env().items() if k != "PATH"})  # the image's PATH names its venv
    env.update(compose["services"]["api"]["environment"])
    env.update(FGAN_HOST="127.0.0.1", FGAN_PORT=str(free_port()), FGAN_WEIGHTS_DIR=str(tiny_weights))
    return env


@pytest.fixture(scope="module")
def server(runtime, container_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    """The image's ENTRYPOINT + CMD, started as the container would start it (no --host/--port: the
    environment says where it listens); ready when yielded."""
    argv = [*(runtime.exec_form("ENTRYPOINT") if runtime.last("ENTRYPOINT") else []), *runtime.exec_form("CMD")]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(_resolve(argv), env=container_env, stdout=out, stderr=subprocess.STDOUT)
    service = LocalService(proc, f"http://127.0.0.1:{container_env['FGAN_PORT']}", log)
    try:
        try:
            service.wait_ready(STARTUP_TIMEOUT_S)
        except ServiceFailed as e:
            pytest.fail(f"{argv}: {e}")
        proc.log = log  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthchecks(runtime, compose) -> dict[str, list[str]]:
    _, image_check = runtime.healthcheck()
    compose_check = compose["services"]["api"]["healthcheck"]["test"]
    assert compose_check[0] == "CMD"
    return {"Dockerfile HEALTHCHECK": image_check, "compose healthcheck": compose_check[1:]}


@pytest.mark.slow
def test_healthchecks_pass_against_the_started_service(server, runtime, compose, container_env):
    for what, argv in _healthchecks(runtime, compose).items():
        result = _run(argv, container_env, timeout=30)
        assert result.returncode == 0, f"{what} failed against a ready service:\n{result.stderr}"


def test_healthchecks_give_up_before_docker_does(runtime, compose):
    # Docker counts a check that outlives its timeout as failed without a word; the command's own HTTP
    # timeout ends it first, with its own error. (Read from the files, not timed: a busy machine would
    # make a timing flaky.)
    limits = {
        "Dockerfile HEALTHCHECK": runtime.healthcheck()[0]["timeout"],
        "compose healthcheck": compose["services"]["api"]["healthcheck"]["timeout"],
    }
    for what, argv in _healthchecks(runtime, compose).items():
        (own,) = re.findall(r"timeout=(\d+(?:\.\d+)?)", " ".join(argv))
        assert float(own) < float(limits[what].rstrip("s")), (
            f"{what}: urlopen timeout {own} s, check timeout {limits[what]}"
        )


@pytest.mark.slow
def test_probed_endpoints_answer(server, deployments, container_env):
    # The paths Kubernetes probes and Prometheus scrapes exist and answer 200 on a ready service.
    base = f"http://127.0.0.1:{container_env['FGAN_PORT']}"
    (container,) = deployments["cpu"]["spec"]["template"]["spec"]["containers"]
    paths = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    paths.add(deployments["cpu"]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"])
    for path in sorted(paths):
        assert _get(base + path) == 200, path
    # The metrics docs/deployment.md tells operators to watch are the ones the service exports.
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        exported = response.read().decode()
    documented = set(re.findall(r"`(fgan_[a-z_]+)`", (ROOT / "docs" / "deployment.md").read_text()))
    assert documented, "docs/deployment.md names no metric"
    missing = sorted(name for name in documented if not re.search(rf"^# TYPE {name}\b", exported, re.M))
    assert not missing, f"documented metrics the service does not export: {missing}"


@pytest.mark.slow
def test_service_stops_cleanly_on_sigterm(server):
    # `docker stop` and Kubernetes send SIGTERM to PID 1, which the exec-form CMD makes the server itself.
    # Runs last in this module: it ends the shared server.
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the service did not exit within {SHUTDOWN_TIMEOUT_S} s of SIGTERM")
    log = server.log.read_text()
    # uvicorn finishes its graceful shutdown, then re-raises the signal it caught: -SIGTERM is a clean stop too.
    assert code in (0, -signal.SIGTERM), log[-4000:]
    assert "Application shutdown complete" in log, f"no graceful shutdown:\n{log[-4000:]}"


def test_healthchecks_fail_when_nothing_listens(runtime, compose, container_env):
    env = {**container_env, "FGAN_PORT": str(free_port())}
    for what, argv in _healthchecks(runtime, compose).items():
        result = _run(argv, env, timeout=30)
        assert result.returncode != 0, f"{what} passed with nothing listening"


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 503, as a service whose models are not loaded answers /readyz."""

    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_healthchecks_fail_on_an_error_status(runtime, compose, container_env):
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**container_env, "FGAN_PORT": str(stub.server_address[1])}
        for what, argv in _healthchecks(runtime, compose).items():
            result = _run(argv, env, timeout=30)
            assert result.returncode != 0, f"{what} passed on a 503"
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join()
