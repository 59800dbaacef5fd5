import gzip
import struct

import numpy as np
import pytest
import torch

from tests.conftest import REAL_DATA, requires_real_data, write_dataset
from training import data
from training.data import DataError, find_dataset, load_split, read_idx, write_idx


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.shape == (2, 28, 28) and np.array_equal(out, array)


def _raw(tmp_path, payload: bytes, name="f-idx1-ubyte"):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def test_bad_magic_is_named(tmp_path):
    path = _raw(tmp_path, b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="bad magic number") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_header(tmp_path):
    with pytest.raises(DataError, match="truncated header"):
        read_idx(_raw(tmp_path, b"\x00\x00\x08\x03" + struct.pack(">I", 5)))


def test_truncated_data(tmp_path):
    payload = b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01" * 7
    with pytest.raises(DataError, match=r"need 10 bytes of data, found 7 \(truncated\)"):
        read_idx(_raw(tmp_path, payload))


def test_trailing_bytes(tmp_path):
    payload = b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x01" * 3
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(_raw(tmp_path, payload))


def test_too_short_and_empty(tmp_path):
    with pytest.raises(DataError, match="too short"):
        read_idx(_raw(tmp_path, b""))


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 100) + bytes(100))
    path = _raw(tmp_path, good[: len(good) // 2], "f-idx1-ubyte.gz")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(path)


def test_load_split_from_data_dir(tmp_path):
    directory = write_dataset(tmp_path / "d", n_train=30, n_test=10, gz=False)
    train = load_split("train", data_dir=directory, download=False)
    test = load_split("test", data_dir=directory, download=False)
    assert train.images.shape == (30, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and len(test) == 10
    assert len(load_split("train", data_dir=directory, limit=12, download=False)) == 12


def test_labels_must_match_images(tmp_path):
    directory = write_dataset(tmp_path / "d", n_train=30, n_test=10)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(29, dtype=np.uint8))
    with pytest.raises(DataError, match="29 labels for 30 images"):
        load_split("train", data_dir=directory, download=False)


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """Point the Debian location and the cache somewhere empty, and clear the variable."""
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data.DATA_ENV, raising=False)


def test_discovery_order_flag_then_env_then_debian(tmp_path, monkeypatch, no_system_data):
    flag = write_dataset(tmp_path / "flag")
    env = write_dataset(tmp_path / "env")
    debian = write_dataset(tmp_path / "debian")
    monkeypatch.setenv(data.DATA_ENV, str(env))
    assert find_dataset(data_dir=flag, download=False) == flag
    assert find_dataset(download=False) == env
    monkeypatch.delenv(data.DATA_ENV)
    assert find_dataset(download=False) == debian


def test_incomplete_folder_is_skipped(tmp_path, monkeypatch, no_system_data):
    partial = write_dataset(tmp_path / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    env = write_dataset(tmp_path / "env")
    monkeypatch.setenv(data.DATA_ENV, str(env))
    assert find_dataset(data_dir=partial, download=False) == env


def test_nothing_found_lists_every_place_and_the_fix(tmp_path, monkeypatch, no_system_data):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "env"))
    with pytest.raises(DataError) as info:
        find_dataset(data_dir=tmp_path / "flag", download=False)
    message = str(info.value)
    for place in ("--data-dir", "$FGAN_DATA_DIR", "Debian package", "download cache", "download: not attempted"):
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_failed_download_is_reported(tmp_path, monkeypatch, no_system_data):
    def offline(dataset, root):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError, match=r"download into .*failed \(OSError: network unreachable\)"):
        find_dataset()


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set"):
        find_dataset("cifar")


@requires_real_data
@pytest.mark.realdata
def test_real_fashion_mnist_counts():
    train = load_split("train", data_dir=REAL_DATA, download=False)
    test = load_split("test", data_dir=REAL_DATA, download=False)
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.labels.bincount().tolist() == [6000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
