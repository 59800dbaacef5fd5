"""Shared fixtures: tiny IDX data sets written by the tests, so the real loader runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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


requires_real_data = pytest.mark.skipif(
    not real_data_present(), reason=f"real Fashion-MNIST not in {REAL_DATA} (apt-get install dataset-fashion-mnist)"
)


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test, restored after (tiny networks, or exact-sum checks)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
