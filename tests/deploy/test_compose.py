"""docker-compose.yml, its GPU override and the reverse proxy: the pieces agree with each other and the image."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "default.conf"


def _nginx_directives() -> dict[str, list[str]]:
    """directive -> its argument strings, from deploy/nginx/default.conf (comments dropped)."""
    out: dict[str, list[str]] = {}
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    for statement in re.split(r"[;{}]", text):
        words = statement.split()
        if words:
            out.setdefault(words[0], []).append(" ".join(words[1:]))
    return out


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def test_api_is_hardened_limited_and_restarted(compose):
    api = compose["services"]["api"]
    assert api["read_only"] is True
    assert any(t.split(":")[0] == "/tmp" for t in api["tmpfs"]), "a read-only root needs a writable /tmp"
    assert api["restart"] in ("always", "unless-stopped", "on-failure")
    limits = api["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and limits["memory"]
    # torch's threads follow the CPU limit, which the service reads itself (its cgroup quota): a fixed
    # count here would oversubscribe the limit once several models' passes run at once.
    assert "FGAN_TORCH_THREADS" not in api["environment"]
    assert "ALL" in api.get("cap_drop", [])


def test_api_healthcheck_is_exec_form_on_readyz(compose):
    test = compose["services"]["api"]["healthcheck"]["test"]
    assert test[0] == "CMD", "exec form: the command runs without a shell, exactly as written"
    assert "/readyz" in " ".join(test)


def test_replicas_publish_no_host_port_and_the_proxy_does(compose, runtime):
    api, proxy = compose["services"]["api"], compose["services"]["proxy"]
    # A fixed host port on api would make `--scale api=3` fail on the second replica.
    assert "ports" not in api
    assert [str(p) for p in api["expose"]] == [runtime.env()["FGAN_PORT"]]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    (published,) = proxy["ports"]
    host_port, container_port = published.rsplit(":", 1)
    assert host_port == "8000"
    assert _nginx_directives()["listen"] == [container_port]


def test_proxy_mounts_its_config_and_points_at_the_api_service(compose, runtime):
    proxy = compose["services"]["proxy"]
    mounts = [v.split(":") for v in proxy["volumes"]]
    assert ["./deploy/nginx/default.conf", "/etc/nginx/conf.d/default.conf", "ro"] in mounts
    assert all((ROOT / src).exists() for src, *_ in mounts)
    directives = _nginx_directives()
    # Resolved per request through Docker's DNS, so replicas added by --scale are picked up.
    assert directives["resolver"][0].split()[0] == "127.0.0.11"
    (upstream,) = [s.split()[1] for s in directives["set"] if s.startswith("$api_upstream")]
    assert upstream == f"http://api:{runtime.env()['FGAN_PORT']}"
    assert directives["proxy_pass"] == ["$api_upstream"]
    assert set(compose["services"]) == {"api", "proxy"}


def test_proxy_limits_leave_room_for_the_service_s_own(settings_class, settings_defaults):
    directives = _nginx_directives()
    size = directives["client_max_body_size"][0]
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()
    limit = int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]
    # The service answers an oversized upload with its own 413 message; nginx must not cut in first,
    # whatever FGAN_MAX_UPLOAD_BYTES is set to.
    (most,) = [m.le for m in settings_class.model_fields["max_upload_bytes"].metadata if hasattr(m, "le")]
    assert limit > most
    assert _seconds(directives["proxy_read_timeout"][0]) > settings_defaults["request_timeout_s"]


def test_gpu_override_reserves_an_nvidia_gpu_and_builds_cuda_torch(compose, compose_gpu):
    api = compose_gpu["services"]["api"]
    (device,) = api["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and int(device["count"]) >= 1
    assert api["environment"]["FGAN_DEVICE"].startswith("cuda")
    cpu_index = compose["services"]["api"]["build"]["args"]["TORCH_INDEX_URL"]
    assert cpu_index.endswith("/cpu") and api["build"]["args"]["TORCH_INDEX_URL"] != cpu_index
    assert api["image"] != compose["services"]["api"]["image"], "CPU and GPU images must not share a tag"


def test_cpu_build_arg_matches_the_dockerfile_default(compose, stages):
    (arg,) = [a for s in stages for a in s.all("ARG") if a.startswith("TORCH_INDEX_URL=")]
    assert arg.split("=", 1)[1] == compose["services"]["api"]["build"]["args"]["TORCH_INDEX_URL"]


def test_stop_grace_period_lets_open_requests_finish(compose, settings_defaults):
    # On SIGTERM the service drains open requests for up to the request timeout (plus a second) before it
    # exits; Docker's SIGKILL must not come first.
    grace = _seconds(compose["services"]["api"]["stop_grace_period"])
    assert grace > settings_defaults["request_timeout_s"] + 1
