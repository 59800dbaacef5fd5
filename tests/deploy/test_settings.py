"""Every setting of the service is documented in each deployment file, with a value the service accepts.

The list comes from service/settings.py itself, so a setting added there fails here until it is documented.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _parse(settings_class, field: str, value: str) -> Any:
    """What the service makes of ``value`` for ``field`` (a bad value raises, naming the variable)."""
    return getattr(settings_class(**{field: value}), field)


def _documented_in_comment(text: str, env_name: str) -> bool:
    return re.search(rf"#.*\b{env_name}\b", text) is not None


def test_compose_lists_every_setting_with_the_service_default(
    compose, setting_names, settings_class, settings_defaults
):
    env = compose["services"]["api"]["environment"]
    raw = (ROOT / "docker-compose.yml").read_text()
    # Where the container must differ from the service's own defaults (each explained in the file).
    deviations = {"FGAN_HOST": "0.0.0.0"}
    for env_name, field in setting_names.items():
        if env_name not in env:
            assert _documented_in_comment(raw, env_name), f"docker-compose.yml does not mention {env_name}"
            continue
        expected = deviations.get(env_name, settings_defaults[field])
        assert _parse(settings_class, field, env["FGAN_" + field.upper()]) == expected, env_name
    unknown = {k for k in env if k.startswith("FGAN_")} - setting_names.keys()
    assert not unknown, f"docker-compose.yml sets variables the service does not read: {unknown}"


def test_kubernetes_sets_every_setting_to_a_value_the_service_accepts(
    shared_manifests, deployments, setting_names, settings_class
):
    (configmap,) = [doc for (kind, _), doc in shared_manifests.items() if kind == "ConfigMap"]
    comment_text = (K8S / "configmap.yaml").read_text()
    for variant, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        values = dict(configmap["data"])
        from_secret = set()
        for item in container["env"]:
            if "value" in item:
                values[item["name"]] = item["value"]
            else:
                from_secret.add(item["name"])
        for env_name, field in setting_names.items():
            if env_name in values:
                _parse(settings_class, field, values[env_name])
            else:
                assert env_name in from_secret or _documented_in_comment(comment_text, env_name), (
                    f"{variant}: {env_name} is neither set nor mentioned"
                )
        unknown = {k for k in values if k.startswith("FGAN_")} - setting_names.keys()
        assert not unknown, f"{variant}: variables the service does not read: {unknown}"
        assert values["FGAN_HOST"] == "0.0.0.0"


def _shown(default: Any) -> str | None:
    """How a scalar default is written in the docs' table (None for defaults described in words)."""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if isinstance(default, int | float | str):
        return str(default)
    return None


def test_deployment_docs_describe_every_setting_with_its_default(setting_names, settings_defaults):
    rows = {
        m[1]: m[0]
        for m in re.finditer(r"^\| `(FGAN_[A-Z_]+)` \|.*$", (ROOT / "docs" / "deployment.md").read_text(), re.M)
    }
    for env_name, field in setting_names.items():
        assert env_name in rows, f"docs/deployment.md has no table row for {env_name}"
        shown = _shown(settings_defaults[field])
        if shown is not None:
            default_cell = rows[env_name].split("|")[2]
            assert f"`{shown}`" in default_cell, f"{env_name}: the docs do not give the default {shown}"
