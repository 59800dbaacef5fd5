"""The README's two commands, as a new user runs them on a stock Debian/Ubuntu Python.

`.ci/run` runs the first command's install with the system Python (which refuses `pip install` outside a
virtual environment, PEP 668) and the tests in the environment it makes; here the README and `.ci/run`
are held to the same command, and the command's last part, starting the service, is run for real.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench.local_service import running
from training.data import DEBIAN_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / ".ci" / "run"


def _quickstart() -> list[str]:
    """The bash blocks of the README's quickstart section, in order."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"<!-- section:quickstart -->(.*?)<!-- /section:quickstart -->", text, re.S)
    assert section, "README.md has no quickstart section"
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section[1], re.S)]


def _ci_install() -> str:
    (command,) = re.findall(r"^readme_install='(.*)'$", CI.read_text(), re.M)
    return command


def test_readme_has_two_commands_install_and_serve_then_test():
    serve, test = _quickstart()
    assert "\n" not in serve, "the first command is one line"
    assert test == "bash .ci/run"


def test_ci_runs_the_readme_install_with_the_system_python():
    serve, _ = _quickstart()
    install = _ci_install()
    assert serve.startswith(install + " && "), f"the README's first command does not begin with .ci/run's {install!r}"
    # A virtual environment first (PEP 668), every version from the lock, nothing of the extras.
    first, *rest = (shlex.split(part) for part in install.split(" && "))
    assert first == ["python3", "-m", "venv", ".venv"]
    (pip,) = rest
    assert pip[0] == ".venv/bin/pip" and pip[1] == "install" and pip[2:4] == ["-c", "constraints.txt"]
    assert pip[-2:] == ["-e", "."]
    text = CI.read_text()
    assert "python=/usr/bin/python3" in text and 'PATH="$(dirname "$python"):$PATH"' in text
    assert "python -m pytest tests --allowed-skips .ci/allowed-skips" in text


@pytest.mark.slow
def test_readme_start_command_serves(tmp_path):
    # The command's last part, in the environment that the install part made when the tests run in it
    # (as under .ci/run), else in this interpreter's; on a free port instead of 8000.
    serve, _ = _quickstart()
    argv = shlex.split(serve.rsplit(" && ", 1)[1])
    assert argv[0] == ".venv/bin/python" and argv[1:3] == ["-m", "service"], argv
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "8000"
    in_readme_venv = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    python = str(ROOT / argv[0]) if in_readme_venv else sys.executable
    command = [python, *argv[1 : argv.index("--host")]]
    with (
        running(None, tmp_path / "service.log", command=command) as server,
        urllib.request.urlopen(f"{server.url}/generate?label=3&seed=1", timeout=30) as response,
    ):
        assert response.status == 200 and response.headers["content-type"] == "image/png"


def test_debian_packages_the_project_names_exist():
    # Every package .ci/run installs and every fix the data loader suggests is one apt can install.
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache is not installed: not a Debian/Ubuntu machine")
    named = set(re.findall(r"need\+=\(([a-z0-9.+-]+)\)", CI.read_text())) | set(DEBIAN_PACKAGES.values())
    assert {"dataset-fashion-mnist", "python3-venv", "chromium", "hey"} <= named
    for package in sorted(named):
        result = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and f"Package: {package}" in result.stdout, f"apt has no package {package}"
