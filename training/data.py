"""Fashion-MNIST (and MNIST) from IDX files: reading, discovery, and in-memory batching.

The whole data set is 47 MB as uint8, so it is held as one tensor (on the
training device) and batches are indexed from it rather than built per sample.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

DATA_ENV = "FGAN_DATA_DIR"
DATASETS = ("fashion-mnist", "mnist")
SYSTEM_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}
DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}  # Debian has no package of MNIST
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: np.uint8}  # the only element type these data sets use


class DataError(Exception):
    """An IDX file is malformed, or the data set cannot be found."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or .gz): check magic number, dimensions and size; return a uint8 array."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:  # gzip raises both for damaged archives
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES or not 1 <= ndim <= 3:
        raise DataError(f"{path}: bad magic number {data[:4].hex()} (expected 0000 08 01..03 for uint8 IDX)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header (needs {header} bytes, has {len(data)})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataError(
            f"{path}: dimensions {dims} need {expected} bytes of data, found {len(data) - header}"
            + (" (truncated)" if len(data) - header < expected else " (trailing bytes)")
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _complete(directory: Path) -> bool:
    return all(_find_file(directory, stem) for pair in SPLITS.values() for stem in pair)


def _download(dataset: str, root: Path) -> Path:
    """torchvision's download, for machines that reach the internet; returns the raw IDX folder."""
    from torchvision import datasets  # imported lazily: only this path needs it

    cls = datasets.FashionMNIST if dataset == "fashion-mnist" else datasets.MNIST
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)
    return root / cls.__name__ / "raw"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fashion-gan"


def find_dataset(
    dataset: str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Return the folder holding the data set's four IDX files.

    Looks, in order, at ``data_dir``, $FGAN_DATA_DIR, Debian's
    /usr/share/datasets/<name>, the download cache, and finally torchvision's
    download (when ``download``). Raises one DataError listing every place tried.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown data set {dataset!r}; expected one of {', '.join(DATASETS)}")
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / dataset
    candidates: list[tuple[str, Path]] = []
    if data_dir:
        candidates.append(("--data-dir", Path(data_dir)))
    if os.environ.get(DATA_ENV):
        candidates.append((f"${DATA_ENV}", Path(os.environ[DATA_ENV])))
    candidates.append(("Debian package", SYSTEM_DIRS[dataset]))
    cls_name = "FashionMNIST" if dataset == "fashion-mnist" else "MNIST"
    candidates.append(("download cache", cache / cls_name / "raw"))
    tried = []
    for source, directory in candidates:
        if _complete(directory):
            log.info("using %s from %s (%s)", dataset, directory, source)
            return directory
        tried.append(f"  - {source}: {directory} ({'incomplete' if directory.is_dir() else 'not found'})")
    if download:
        try:
            directory = _download(dataset, cache)
            if _complete(directory):
                return directory
            tried.append(f"  - download into {cache}: finished but files are missing")
        except Exception as exc:
            tried.append(f"  - download into {cache}: failed ({type(exc).__name__}: {exc})")
    else:
        tried.append("  - download: not attempted (disabled)")
    names = ", ".join(f"{s}(.gz)" for pair in SPLITS.values() for s in pair)
    raise DataError(
        f"{dataset} not found. Tried:\n"
        + "\n".join(tried)
        + ("\nFix: " + (f"`apt-get install {DEBIAN_PACKAGES[dataset]}`, or " if dataset in DEBIAN_PACKAGES else ""))
        + f"put {names} in a folder and pass "
        f"--data-dir or set {DATA_ENV}, or run on a machine with internet access to download it."
    )


@dataclass
class Split:
    """One split held in memory: images (N, 28, 28) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: str | torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


def load_split(
    split: str = "train",
    dataset: str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    download: bool = True,
) -> Split:
    """Load one split ("train" or "test") as tensors; ``limit`` keeps the first N images."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected train or test")
    directory = find_dataset(dataset, data_dir, download=download)
    img_stem, lbl_stem = SPLITS[split]
    img_path, lbl_path = _find_file(directory, img_stem), _find_file(directory, lbl_stem)
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{img_path}: expected images of shape (N, 28, 28), found {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{lbl_path}: {labels.shape[0]} labels for {images.shape[0]} images in {img_path.name}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} out of range 0-9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzip when the name ends in .gz). Used by tests and tools."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path
