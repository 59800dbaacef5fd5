"""Shared fixtures and the suite's rules.

- Tiny IDX data sets written by the tests, so the real loader runs.
- The real data set is for tests marked ``realdata`` only: they skip, with the reason, where it is absent,
  and every other test sees neither Debian's folder nor a download cache nor the network download.
- ``--allowed-skips FILE``: the run fails when a test skips for a reason that no line of FILE matches
  (``.ci/run`` passes ``.ci/allowed-skips``). pytest reads the option from this file only when the command
  names tests/ or a path below it: ``pytest tests --allowed-skips FILE``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from training import data
from training.data import SPLITS, SYSTEM_DIRS, write_idx

REAL_DATA = SYSTEM_DIRS["fashion-mnist"]


def make_fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-dependent images: class k is a bright horizontal band at rows 2k..2k+8, plus noise."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k : 2 * k + 8, 4:24] = 220
    return images, labels


def write_dataset(directory: Path, n_train: int = 200, n_test: int = 50, gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = make_fake_split(n, seed)
        img_stem, lbl_stem = SPLITS[split]
        suffix = ".gz" if gz else ""
        write_idx(directory / (img_stem + suffix), images)
        write_idx(directory / (lbl_stem + suffix), labels)
    return directory


@pytest.fixture
def tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny Fashion-MNIST-shaped data set, found through $FGAN_DATA_DIR."""
    directory = write_dataset(tmp_path / "data")
    monkeypatch.setenv("FGAN_DATA_DIR", str(directory))
    return directory


def real_data_present() -> bool:
    return all(any((REAL_DATA / (s + ext)).is_file() for ext in ("", ".gz")) for pair in SPLITS.values() for s in pair)


# The real data set.

# A test that reads the real Fashion-MNIST carries this marker; where the files are absent it skips (the
# hook below adds the skip). ``requires_real_data`` is the same marker under its older name.
requires_real_data = pytest.mark.realdata
NO_REAL_DATA = f"real Fashion-MNIST not in {REAL_DATA} (apt-get install dataset-fashion-mnist)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if real_data_present():
        return
    for item in items:
        if item.get_closest_marker("realdata"):
            item.add_marker(pytest.mark.skip(reason=NO_REAL_DATA))


@pytest.fixture(autouse=True)
def _real_data_for_realdata_tests_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside ``realdata`` tests the loader finds no real data: not Debian's, not a cache, no download.

    A test that reads the real data set without the marker then fails where it would otherwise pass here
    and skip, or download, elsewhere; the error names the marker.
    """
    if request.node.get_closest_marker("realdata"):
        return
    hidden = Path("/nonexistent/real-data-needs-the-realdata-marker")
    for name in SYSTEM_DIRS:
        monkeypatch.setitem(SYSTEM_DIRS, name, hidden / name)
    monkeypatch.setattr(data, "default_cache_dir", lambda: hidden / "cache")

    def no_download(dataset: str, root: Path) -> Path:
        raise data.DataError(f"tests download nothing ({dataset}); a test of the real data carries the realdata marker")

    monkeypatch.setattr(data, "_download", no_download)


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test, restored after (tiny networks, or exact-sum checks)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Skips are decisions: with --allowed-skips, a skip for a reason not listed fails the run.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--allowed-skips",
        metavar="FILE",
        help="fail the run when a test skips for a reason that no line of FILE (a regular expression) matches",
    )


_skips: list[tuple[str, str]] = []  # (test id, reason)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skips.append((report.nodeid, _skip_reason(report)))


def _allowed_patterns(path: str) -> list[re.Pattern[str]]:
    lines = Path(path).read_text().splitlines()
    return [re.compile(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _unexpected_skips(config: pytest.Config) -> list[tuple[str, str]]:
    path = config.getoption("--allowed-skips")
    if not path:
        return []
    allowed = _allowed_patterns(path)
    return [(node, reason) for node, reason in _skips if not any(p.search(reason) for p in allowed)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips(session.config) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    unexpected = _unexpected_skips(config)
    if unexpected:
        terminalreporter.section("skips not on the allowed list", sep="=", red=True, bold=True)
        for node, reason in unexpected:
            terminalreporter.line(f"SKIPPED {node}: {reason}")
        terminalreporter.line(f"{len(unexpected)} skip(s) for reasons not in {config.getoption('--allowed-skips')}")
