"""The Dockerfile and its build context: what the image runs, who runs it, and what it is built from."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from models import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_runtime_stage_runs_unprivileged_and_exposes_the_service_port(runtime):
    user = runtime.last("USER")
    assert user is not None, "the image must not run as root"
    uid, _, gid = user.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0), user
    env = runtime.env()
    assert env["FGAN_HOST"] == "0.0.0.0", "inside a container the service must listen beyond loopback"
    assert runtime.all("EXPOSE") == [env["FGAN_PORT"]]


def test_start_and_health_commands_are_exec_form(runtime):
    # Exec form: the server is PID 1 and gets docker stop's SIGTERM; no shell stands between.
    cmd = runtime.exec_form("CMD")
    assert cmd[0] in ("fgan-serve", "python", "python3")
    options, argv = runtime.healthcheck()
    assert "/healthz" in " ".join(argv), "the image's healthcheck is liveness: /healthz"
    assert {"interval", "timeout", "start-period", "retries"} <= options.keys()


def test_runtime_stage_copies_only_the_built_environment(stages, runtime):
    # Nothing from the build context reaches the runtime stage; build tools and sources stay behind.
    copies = runtime.copies()
    assert copies, "the runtime stage copies the virtual environment from the build stage"
    names = {s.name for s in stages}
    for options, _, _, _ in copies:
        assert options.get("from") in names, f"runtime COPY without --from a build stage: {options}"


def test_context_keeps_runs_caches_and_tests_out(dockerignore):
    for path in (
        ".git/HEAD",
        "tests/deploy/test_image.py",
        "runs/exp1/stats.jsonl",
        "bench/results/x.json",
        ".venv/bin/python",
        "models/__pycache__/networks.cpython-311.pyc",
        "models/weights/generator/.model.safetensors.tmp",
        "fashion_gan.egg-info/PKG-INFO",
        ".pytest_cache/v/cache/nodeids",
    ):
        assert dockerignore.excluded(path), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "models/networks.py", "models/weights/generator/model.safetensors"):
        assert not dockerignore.excluded(path), f"{path} would be missing from the build context"


def test_every_copied_source_exists_and_is_in_the_context(stages, dockerignore):
    for stage in stages:
        for options, sources, _, _ in stage.copies():
            if "from" in options:
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
                assert not dockerignore.excluded(source), f"Dockerfile copies {source}, which .dockerignore drops"


def _assemble_build_sources(stages, dockerignore, dest: Path) -> Path:
    """Lay out the build stage's /src as its COPY instructions would, from the context .dockerignore lets through."""
    (build,) = [s for s in stages if s.name == "build"]  # the stage that installs the project
    workdir = None
    for _, sources, target, cwd in build.copies():
        workdir = workdir or cwd
        assert cwd == workdir, "the build stage copies into one WORKDIR"
        for source in sources:
            src = ROOT / source
            to = dest / target / src.name if target.endswith("/") else dest / target
            if src.is_dir():
                for path in src.rglob("*"):
                    rel = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not dockerignore.excluded(rel):
                        out = to / path.relative_to(src)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, out)
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, to)
    return dest


@pytest.mark.slow
def test_project_built_from_the_image_sources_carries_service_and_weights(stages, dockerignore, tmp_path):
    # What `pip install .` in the build stage installs: a wheel built from exactly the copied files.
    src = _assemble_build_sources(stages, dockerignore, tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "service/__main__.py" in names and "models/networks.py" in names
    shipped = sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/config.json"))
    assert shipped, f"no shipped weights under {WEIGHTS_DIR}: the image build checks for them and would fail"
    for name in shipped:
        assert {f"models/weights/{name}/config.json", f"models/weights/{name}/model.safetensors"} <= names, name
