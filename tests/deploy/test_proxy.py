"""The reverse proxy's configuration, run by a real nginx, spreads requests over scaled replicas.

Docker is stood in for on loopback: a tiny DNS server on Docker's resolver address (127.0.0.11) answers the
name "api" with one address per replica, and each replica is a stub HTTP server on 127.0.0.N at the port
the configuration names. The configuration file is included as written; only its `listen` moves to a free
loopback port. Needs root (port 53) and Debian's nginx; skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "default.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="serving DNS on Docker's resolver address 127.0.0.11:53 needs root"),
]


class _Dns:
    """Answers every A query with the current replica addresses (TTL 1 s)."""

    def __init__(self, host: str, port: int) -> None:
        self.addresses: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            (txid,) = struct.unpack(">H", query[:2])
            end = 12
            while query[end]:  # the question's name: length-prefixed labels, then a zero byte
                end += query[end] + 1
            qtype = struct.unpack(">H", query[end + 1 : end + 3])[0]
            question = query[12 : end + 5]
            answers = list(self.addresses) if qtype == 1 else []
            reply = struct.pack(">HHHHHH", txid, 0x8180, 1, len(answers), 0, 0) + question
            for address in answers:  # a pointer to the question's name, type A, class IN, TTL, 4 bytes
                reply += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4) + socket.inet_aton(address)
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def _replica(address: str, port: int, status: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _directive(name: str) -> str:
    (value,) = re.findall(rf"^\s*{name}\s+([^;]+);", CONF.read_text(), re.M)
    return value.strip()


@pytest.fixture
def setting(tmp_path: Path) -> Iterator[tuple[_Dns, dict[str, http.server.ThreadingHTTPServer], str]]:
    resolver = _directive("resolver").split()[0]
    upstream = re.fullmatch(r"\$\w+ http://api:(\d+)", _directive("set"))
    assert upstream, "expected `set $var http://api:PORT;`"
    port = int(upstream[1])
    try:
        dns = _Dns(resolver, 53)
    except OSError as e:
        pytest.skip(f"cannot serve DNS on {resolver}:53 ({e}): another run of this test holds it?")
    replicas: dict[str, http.server.ThreadingHTTPServer] = {}
    proc = None
    try:
        for address, status in (("127.0.0.2", 200), ("127.0.0.3", 200), ("127.0.0.4", 200), ("127.0.0.5", 503)):
            try:
                replicas[address] = _replica(address, port, status)
            except OSError as e:
                pytest.skip(f"cannot listen on {address}:{port} ({e}): something holds that port on all addresses")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            listen = s.getsockname()[1]
        (tmp_path / "logs").mkdir()
        site = re.sub(r"listen\s+\d+;", f"listen 127.0.0.1:{listen};", CONF.read_text())
        (tmp_path / "site.conf").write_text(site)
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
            f"http {{\n    access_log off;\n    include {tmp_path}/site.conf;\n}}\n"
        )
        log = tmp_path / "nginx.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [NGINX, "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                stderr=out,
            )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen), timeout=1):
                break
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.1)
        yield dns, replicas, f"http://127.0.0.1:{listen}"
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        for server in replicas.values():
            server.shutdown()
            server.server_close()
        dns.close()


def _spread(base: str, n: int) -> tuple[Counter[int], Counter[str]]:
    """Statuses, and which replica(s) answered (the X-Upstream header), over n GET requests."""
    statuses, upstreams = Counter(), Counter()
    for _ in range(n):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                statuses[response.status] += 1
                upstreams[response.headers["X-Upstream"]] += 1
        except urllib.error.HTTPError as e:
            statuses[e.code] += 1
            upstreams[e.headers["X-Upstream"]] += 1
    return statuses, upstreams


def test_requests_spread_over_replicas_and_follow_scaling_without_a_restart(setting):
    dns, replicas, base = setting
    valid = int(re.search(r"valid=(\d+)s", _directive("resolver"))[1])

    # Two replicas: both serve.
    dns.addresses = ["127.0.0.2", "127.0.0.3"]
    statuses, upstreams = _spread(base, 30)
    assert statuses == {200: 30}
    assert set(upstreams) == {"127.0.0.2:8000", "127.0.0.3:8000"}

    # `--scale api=4`: two more replicas, one of them with a full queue (503). Once the cached answer
    # expires, the new healthy one serves too, and no client sees the 503: nginx hands those GETs on.
    dns.addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    time.sleep(valid + 1)
    statuses, upstreams = _spread(base, 60)
    assert statuses == {200: 60}, statuses
    first = Counter(u.split(",")[0] for u in upstreams.elements())
    assert set(first) == {f"{a}:8000" for a in replicas}, first
    assert all(u.startswith("127.0.0.5:8000, ") for u in upstreams if "127.0.0.5" in u)
