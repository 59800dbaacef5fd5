"""Readers for the deployment files, so the tests check the files as written rather than copies of them.

The Dockerfile and .dockerignore have no parser in the standard library; the small ones here follow the
documented rules (line continuations, exec-form JSON, last matching .dockerignore pattern wins).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
LOCK = ROOT / "constraints.txt"


# The lock.


def read_lock() -> dict[str, Version]:
    """Canonical name -> locked version, from constraints.txt (name==version lines, maybe with a marker)."""
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith(("#", " ", "-")):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        name = canonicalize_name(req.name)
        assert spec.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = Version(spec.version)
    return pins


def requirement_closure(root: str, extras: Iterable[str], requires: Callable[[str], list[str] | None]) -> set[str]:
    """Canonical names of what ``root`` with ``extras`` needs, ``root`` left out; ``requires(name)`` gives a
    distribution's requirement lines (importlib.metadata.requires), whose markers are evaluated here."""
    root = canonicalize_name(root)
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        for line in requires(name) or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            dep = canonicalize_name(req.name)
            if dep == root:  # an extra that includes another (dev includes train)
                todo.append((root, frozenset(req.extras)))
            elif dep not in seen:
                seen.add(dep)
                todo.append((dep, frozenset(req.extras)))
    return seen


# Dockerfile.


@dataclass
class Stage:
    """One FROM ... stage: its instructions in order, as (KEYWORD, arguments) pairs."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """The argv of the last ``keyword`` (CMD, ENTRYPOINT) instruction; shell form fails the test."""
        args = self.last(keyword)
        assert args is not None, f"no {keyword} in stage {self.name or self.base}"
        return _exec_form(args, keyword)

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """HEALTHCHECK's --options and its command's argv."""
        args = self.last("HEALTHCHECK")
        assert args is not None, "no HEALTHCHECK"
        options, rest = _split_options(args)
        keyword, _, command = rest.partition(" ")
        assert keyword.upper() == "CMD", f"HEALTHCHECK {rest!r}"
        return options, _exec_form(command.strip(), "HEALTHCHECK CMD")

    def copies(self) -> list[tuple[dict[str, str], list[str], str, str]]:
        """Each COPY/ADD as (options, sources, destination, WORKDIR at that point)."""
        out, workdir = [], "/"
        for keyword, args in self.instructions:
            if keyword == "WORKDIR":
                workdir = str(Path(workdir, args))
            elif keyword in ("COPY", "ADD"):
                options, rest = _split_options(args)
                words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
                out.append((options, words[:-1], words[-1], workdir))
        return out

    def env(self) -> dict[str, str]:
        """ENV key=value pairs in order (values unquoted; later ones win)."""
        env: dict[str, str] = {}
        for args in self.all("ENV"):
            for word in shlex.split(args):
                key, sep, value = word.partition("=")
                assert sep, f"ENV {args!r}: use the key=value form"
                env[key] = value
        return env


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of (KEYWORD, arguments), continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # Comment lines inside a continued instruction are skipped by Docker too.
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def _exec_form(args: str, what: str) -> list[str]:
    """The argv of an exec-form (JSON array) instruction; a shell-form one fails the test."""
    assert args.startswith("["), f"{what} must be in exec form (a JSON array), not {args!r}"
    argv = json.loads(args)
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), f"{what}: {args!r}"
    return argv


def _split_options(args: str) -> tuple[dict[str, str], str]:
    """Leading --key=value options of an instruction (HEALTHCHECK, COPY) and the rest."""
    options: dict[str, str] = {}
    while args.startswith("--"):
        word, _, args = args.partition(" ")
        key, _, value = word[2:].partition("=")
        options[key] = value
        args = args.lstrip()
    return options, args


@pytest.fixture(scope="session")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def runtime(stages: list[Stage]) -> Stage:
    """The stage `docker build` produces by default: the last one."""
    return stages[-1]


# .dockerignore.


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match syntax plus Docker's `**` (any number of path segments)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1].replace("[!", "[^"))
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@dataclass
class DockerIgnore:
    rules: list[tuple[bool, re.Pattern[str]]]  # (is an exception "!...", pattern)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            pattern = pattern.strip("/") or "."
            rules.append((negate, _glob_regex(pattern)))
        return cls(rules)

    def excluded(self, relpath: str) -> bool:
        """Whether a path (relative to the context, with /) stays out: the last rule matching it or a parent wins."""
        parts = relpath.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, regex in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                result = not negate
        return result


@pytest.fixture(scope="session")
def dockerignore() -> DockerIgnore:
    return DockerIgnore.read(ROOT / ".dockerignore")


# Compose.

_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default} against ``env`` (recursively through lists and maps)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name = m["name"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        if op == ":-":
            return env.get(name) or arg
        if op == "-":
            return env.get(name, arg)
        assert op is None, f"interpolation {m[0]!r} is not handled by these tests"
        return env.get(name, "")

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def _read_compose(name: str) -> dict[str, Any]:
    """A compose file as Docker reads it in a shell where none of its variables is set (defaults apply)."""
    data = _interpolate(yaml.safe_load((ROOT / name).read_text()), {})
    for service in data.get("services", {}).values():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        service["environment"] = {k: "" if v is None else str(v) for k, v in env.items()}
    return data


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return _read_compose("docker-compose.yml")


@pytest.fixture(scope="session")
def compose_gpu() -> dict[str, Any]:
    return _read_compose("docker-compose.gpu.yml")


# Kubernetes.


def load_manifests(*paths: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource, for every YAML document in ``paths``."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


@pytest.fixture(scope="session")
def shared_manifests() -> dict[tuple[str, str], dict[str, Any]]:
    return load_manifests(*sorted(K8S.glob("*.yaml")))


@pytest.fixture(scope="session")
def deployments() -> dict[str, dict[str, Any]]:
    """variant (cpu, gpu) -> its Deployment."""
    out = {}
    for variant in ("cpu", "gpu"):
        manifests = load_manifests(*sorted((K8S / variant).glob("*.yaml")))
        (found,) = [doc for (kind, _), doc in manifests.items() if kind == "Deployment"]
        out[variant] = found
    return out


# The service's settings.


@pytest.fixture(scope="session")
def settings_class() -> type:
    from service.settings import Settings

    return Settings


@pytest.fixture(scope="session")
def settings_defaults(settings_class) -> dict[str, Any]:
    """field name -> default, as the service has it with no FGAN_* variable set."""
    return {name: info.get_default(call_default_factory=True) for name, info in settings_class.model_fields.items()}


@pytest.fixture(scope="session")
def setting_names(settings_class) -> dict[str, str]:
    """environment variable -> field name, for every setting."""
    prefix = settings_class.model_config["env_prefix"]
    return {f"{prefix}{name}".upper(): name for name in settings_class.model_fields}
