"""A resumable on-disk cache of slow features (Inception's) and of a real set's Gaussian statistics.

An InceptionV3 pass over 10,000 images takes most of an hour on one CPU thread, so
``cached_features`` cuts a set of uint8 images into chunks and saves each chunk's
features as soon as they are computed. A chunk's file is named by a hash of the
extractor's key (the network's weights and preprocessing) and the chunk's own
pixels: a run that is killed and started again loads the chunks already done and
computes only the rest; another set that shares chunks (the first 2,000 of the same
10,000 generated images) reuses them; any change of pixels or weights misses the
cache rather than returning stale features.

``cached_stats`` does the same for a real set's mean and covariance (one file,
keyed by the same hash of weights and pixels), so that the real test set's
statistics are computed once per set of weights.

Files are written to a temporary name and renamed into place, so a kill never
leaves a half-written chunk under a chunk's name; a file that cannot be read back
is computed again. Everything is loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from training.metrics.features import check_uint8_images
from training.metrics.fid import gaussian_stats

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 500  # images per saved chunk: about two minutes of Inception on one CPU thread
DEFAULT_BATCH = 100  # images per forward pass


class Extractor(Protocol):
    """What the cache needs of a feature extractor."""

    key: str  # identifies the network's weights and preprocessing: part of every cache key

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """uint8 (b, 28, 28) images -> (b, D) float32 features."""
        ...


def images_digest(images: torch.Tensor) -> str:
    """sha256 of a uint8 image tensor's shape and pixels (in order)."""
    check_uint8_images(images)
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _key(extractor_key: str, images: torch.Tensor) -> str:
    return hashlib.sha256(f"{extractor_key}\n{images_digest(images)}".encode()).hexdigest()


def _save_atomically(path: Path, write: Callable[[object], None]) -> None:
    """Write through ``write(file)`` into a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the cache from the other users of a shared folder
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_chunk(path: Path, n: int) -> np.ndarray | None:
    """A saved chunk of n feature rows, or None when absent or unreadable (then it is computed again)."""
    if not path.is_file():
        return None
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("%s cannot be read (%s): computing it again", path, exc)
        return None
    if feats.ndim != 2 or feats.shape[0] != n or feats.dtype != np.float32 or not np.isfinite(feats).all():
        log.warning("%s holds %s %s, not %d finite float32 rows: computing it again", path, feats.dtype, feats.shape, n)
        return None
    return feats


@dataclass
class FeatureRun:
    """The features of one set, and how they were obtained."""

    features: np.ndarray  # (N, D) float32
    computed: int  # images whose features this call computed
    reused: int  # images whose features came from the cache
    seconds: float  # time spent computing (loading excluded)

    @property
    def seconds_per_1000(self) -> float | None:
        return 1000.0 * self.seconds / self.computed if self.computed else None


def compute_features(extract: Extractor, images: torch.Tensor, *, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, D) float32 features, batch by batch, with no cache."""
    check_uint8_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    out = []
    for start in range(0, images.shape[0], batch_size):
        feats = np.asarray(extract(images[start : start + batch_size]), dtype=np.float32)  # (b, D)
        if feats.ndim != 2 or feats.shape[0] != min(batch_size, images.shape[0] - start):
            raise ValueError(f"the extractor returned features of shape {feats.shape} for a batch")
        out.append(feats)
    if not out:
        raise ValueError("no images to compute features of")
    return np.concatenate(out)


def cached_features(
    extract: Extractor,
    images: torch.Tensor,
    cache_dir: str | os.PathLike,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    batch_size: int = DEFAULT_BATCH,
    label: str = "images",
    progress: bool = False,
    only_cached: bool = False,
) -> FeatureRun | None:
    """uint8 (N, 28, 28) -> (N, D) float32 features, chunk by chunk, each chunk saved as soon as it is done.

    Equal to ``compute_features(extract, images, batch_size=batch_size)`` (when ``chunk_size`` is a multiple
    of ``batch_size`` the batches are the very same, so bit for bit). Logs each chunk with the time per
    1,000 images and the time left; ``progress`` adds a progress bar. ``only_cached``: return None at the
    first chunk that would have to be computed.
    """
    check_uint8_images(images)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    n = images.shape[0]
    folder = Path(cache_dir) / "features"
    parts: list[np.ndarray] = []
    computed = reused = 0
    seconds = 0.0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=f"features ({label})", unit="img", leave=False)
    try:
        for start in range(0, n, chunk_size):
            chunk = images[start : start + chunk_size]  # (c, 28, 28)
            path = folder / f"{_key(extract.key, chunk)}.npy"
            feats = _load_chunk(path, len(chunk))
            if feats is not None:
                reused += len(chunk)
            elif only_cached:
                return None
            else:
                if reused and not computed:
                    log.info(
                        "features (%s): the first %s of %s images from the cache; computing the rest",
                        label,
                        f"{reused:,}",
                        f"{n:,}",
                    )
                started = time.perf_counter()
                feats = compute_features(extract, chunk, batch_size=batch_size)
                seconds += time.perf_counter() - started
                computed += len(chunk)
                _save_atomically(path, lambda f, a=feats: np.save(f, a))
                left = (n - start - len(chunk)) * seconds / computed
                log.info(
                    "features (%s): %s/%s images done (%s from the cache); %s computed in %.0f s, "
                    "%.0f s per 1,000; about %.0f min left",
                    label,
                    f"{start + len(chunk):,}",
                    f"{n:,}",
                    f"{reused:,}",
                    f"{computed:,}",
                    seconds,
                    1000 * seconds / computed,
                    left / 60,
                )
            parts.append(feats)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if reused and not computed:
        log.info("features (%s): all %s images from the cache", label, f"{n:,}")
    return FeatureRun(np.concatenate(parts), computed, reused, round(seconds, 2))


@dataclass
class StatsRun:
    """A set's Gaussian statistics, and whether they came from the cache."""

    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int
    from_cache: bool
    features: FeatureRun | None  # None when the statistics came from the cache
    path: Path


def stats_path(extract: Extractor, images: torch.Tensor, cache_dir: str | os.PathLike, name: str) -> Path:
    """Where ``cached_stats`` keeps the statistics of these images under this extractor."""
    return Path(cache_dir) / "stats" / f"{name}-{len(images)}-{_key(extract.key, images)[:24]}.npz"


def cached_stats(
    extract: Extractor,
    images: torch.Tensor,
    cache_dir: str | os.PathLike,
    *,
    name: str,
    chunk_size: int = DEFAULT_CHUNK,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> StatsRun:
    """The mean and covariance of a set's features, from the cache when it holds them, else computed
    (through ``cached_features``, so resumable) and saved. ``name`` (e.g. "fashion-mnist-test") only
    makes the file name readable: the key is the extractor's and the pixels' hash."""
    path = stats_path(extract, images, cache_dir, name)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                mu, sigma, n = saved["mu"], saved["sigma"], int(saved["n"])
            if n == len(images) and mu.ndim == 1 and sigma.shape == (mu.shape[0], mu.shape[0]):
                log.info("statistics of %s (%s images) from %s", name, f"{n:,}", path)
                return StatsRun(mu, sigma, n, True, None, path)
            log.warning("%s holds statistics of another shape: computing them again", path)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("%s cannot be read (%s): computing the statistics again", path, exc)
    run = cached_features(
        extract, images, cache_dir, chunk_size=chunk_size, batch_size=batch_size, label=name, progress=progress
    )
    assert run is not None  # only_cached is off
    mu, sigma = gaussian_stats(run.features)
    _save_atomically(path, lambda f: np.savez(f, mu=mu, sigma=sigma, n=np.int64(len(images)), key=extract.key))
    log.info("saved the statistics of %s to %s", name, path)
    return StatsRun(mu, sigma, len(images), False, run, path)
