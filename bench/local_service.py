"""A server process on a free loopback port: started, waited for until ready, stopped.

The one way the benchmarks and the tests that need a real process run ``python -m service`` (or another
server command, such as a baseline app under uvicorn). Every wait is bounded in time; ``running`` stops the
process whatever happens.

    with running(weights, work / "service.log", env={"FGAN_DEVICE": "cpu"}) as server:
        urllib.request.urlopen(f"{server.url}/generate?label=3")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0  # importing torch on a busy 2-core machine takes a while
STOP_TIMEOUT_S = 30.0


class ServiceFailed(RuntimeError):
    """The server exited, or was not ready in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(weights: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this one without its FGAN_* variables (they would leak into the server),
    the weights directory, the repository on the import path, then ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FGAN_")}
    environment |= {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    if weights is not None:
        environment["FGAN_WEIGHTS_DIR"] = str(weights)
    return environment | dict(env or {})


@dataclass
class LocalService:
    """A server process and where it listens."""

    process: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def status(self, path: str, timeout: float = 2.0) -> int | None:
        """The HTTP status of GET ``path``; None when nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code
        except OSError:
            return None

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait for GET /readyz to answer 200; ServiceFailed if the process exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceFailed(f"the server exited with status {self.process.returncode}:\n{self.log_text()}")
            if self.status("/readyz") == 200:
                return
            time.sleep(0.1)
        raise ServiceFailed(f"the server was not ready within {timeout_s:g} s:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` (a graceful stop by default), kill it after ``timeout_s``; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start(
    weights: Path | None,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    cpu: int | None = None,
    cwd: Path = ROOT,
) -> LocalService:
    """Start a server on a free loopback port (not yet ready: see ``LocalService.wait_ready``).

    ``command``: the server's command line before ``--host``/``--port`` (default ``python -m service``);
    ``cpu``: pin it to that CPU with ``taskset``. Its output and errors go to ``log``.
    """
    port = free_port()
    argv = [*(command or [sys.executable, "-m", "service"]), "--host", "127.0.0.1", "--port", str(port)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            argv, cwd=cwd, env=service_env(weights, env), stdout=output, stderr=subprocess.STDOUT
        )
    return LocalService(process, f"http://127.0.0.1:{port}", log)


@contextlib.contextmanager
def running(
    weights: Path | None, log: Path, *, start_timeout_s: float = START_TIMEOUT_S, **options: object
) -> Iterator[LocalService]:
    """``start`` (same options), wait until ready, and stop it afterwards, whatever happens."""
    server = start(weights, log, **options)  # type: ignore[arg-type]
    try:
        server.wait_ready(start_timeout_s)
        yield server
    finally:
        server.stop()
