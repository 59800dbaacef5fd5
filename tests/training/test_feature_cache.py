"""The resumable feature cache of Inception FID, on tiny extractors: chunked equals unchunked, a killed run
continues where it stopped, the real set's statistics are computed once, and the FIDs at several sizes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.metrics.feature_cache import (
    cached_features,
    cached_stats,
    compute_features,
    images_digest,
    stats_path,
)
from training.metrics.fid import fid_from_features, gaussian_stats
from training.metrics.inception import fids_with_cache

REPO = Path(__file__).resolve().parents[2]


def uint8_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


class SumsExtractor:
    """Row and column sums of the pixels: (b, 56) float32 integers, exact whatever the batch or the process."""

    def __init__(self, key: str = "sums-v1") -> None:
        self.key = key
        self.batches = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.batches += 1
        x = images.to(torch.int64)
        return torch.cat([x.sum(dim=2), x.sum(dim=1)], dim=1).to(torch.float32).numpy()  # (b, 56)


class TinyConvExtractor:
    """A seeded, randomly initialised conv net: a tiny stand-in for InceptionV3."""

    key = "tiny-conv-v1"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2), nn.AdaptiveAvgPool2d(1)
        ).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = images.float().unsqueeze(1) / 127.5 - 1  # (b, 1, 28, 28)
        return self.net(x).flatten(1).numpy()  # (b, 8)


class Interrupted(Exception):
    pass


class DiesAfter(SumsExtractor):
    """Raises on its ``n``-th batch, as a run stopped from outside would."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if self.batches + 1 >= self.n:
            raise Interrupted
        return super().__call__(images)


# Chunked equals unchunked ------------------------------------------------------------------------


def test_chunked_features_equal_unchunked_ones(tmp_path):
    images = uint8_images(23)
    extract = TinyConvExtractor()
    plain = compute_features(extract, images, batch_size=4)
    assert plain.shape == (23, 8) and plain.dtype == np.float32
    # Chunks that are a multiple of the batch: the very same batches, so bit for bit.
    run = cached_features(extract, images, tmp_path, chunk_size=8, batch_size=4)
    assert np.array_equal(run.features, plain)
    assert (run.computed, run.reused) == (23, 0)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 3  # 8 + 8 + 7
    # Any other chunking: the same features to round-off.
    other = cached_features(extract, images, tmp_path / "other", chunk_size=5, batch_size=3)
    np.testing.assert_allclose(other.features, plain, rtol=1e-5, atol=1e-6)
    # A second call reads every chunk back.
    again = cached_features(extract, images, tmp_path, chunk_size=8, batch_size=4)
    assert np.array_equal(again.features, plain) and (again.computed, again.reused) == (0, 23)


def test_a_chunk_is_keyed_by_its_pixels_and_the_extractor(tmp_path):
    images = uint8_images(12)
    first = SumsExtractor()
    cached_features(first, images, tmp_path, chunk_size=4, batch_size=4)
    # The first 8 of the same images: their two chunks are reused.
    shared = SumsExtractor()
    run = cached_features(shared, images[:8], tmp_path, chunk_size=4, batch_size=4)
    assert (run.computed, run.reused, shared.batches) == (0, 8, 0)
    # One pixel changed in the second chunk: that chunk alone is computed again.
    changed = images.clone()
    changed[5, 3, 3] ^= 1
    run = cached_features(shared, changed, tmp_path, chunk_size=4, batch_size=4)
    assert (run.computed, run.reused) == (4, 8)
    assert np.array_equal(run.features, compute_features(SumsExtractor(), changed))
    # Other weights (another key): nothing is reused.
    run = cached_features(SumsExtractor(key="sums-v2"), images, tmp_path, chunk_size=4, batch_size=4)
    assert (run.computed, run.reused) == (12, 0)
    assert images_digest(images) != images_digest(changed)


# Resuming --------------------------------------------------------------------------------------------


def test_an_interrupted_run_continues_where_it_stopped(tmp_path, caplog):
    images = uint8_images(20)
    expected = compute_features(SumsExtractor(), images, batch_size=2)
    with pytest.raises(Interrupted):
        cached_features(DiesAfter(7), images, tmp_path, chunk_size=4, batch_size=2)  # dies in chunk 4 of 5
    saved = list((tmp_path / "features").iterdir())
    assert len(saved) == 3 and all(p.suffix == ".npy" for p in saved)  # three whole chunks, no partial file
    resumed = SumsExtractor()
    with caplog.at_level("INFO"):
        run = cached_features(resumed, images, tmp_path, chunk_size=4, batch_size=2, label="generated")
    assert (run.reused, run.computed, resumed.batches) == (12, 8, 4)
    assert "features (generated): the first 12 of 20 images from the cache; computing the rest" in caplog.text
    assert "20/20 images done (12 from the cache); 8 computed in" in caplog.text
    assert np.array_equal(run.features, expected)
    assert cached_features(SumsExtractor(), images, tmp_path, chunk_size=4, only_cached=True) is not None


def test_unreadable_chunks_and_leftover_partial_files_are_computed_again(tmp_path, caplog):
    images = uint8_images(8)
    run = cached_features(SumsExtractor(), images, tmp_path, chunk_size=4, batch_size=4)
    first, second = sorted((tmp_path / "features").glob("*.npy"))
    first.write_bytes(first.read_bytes()[:50])  # truncated, as a disk-full or foreign write would leave it
    np.save(second, np.zeros((3, 56), np.float32))  # the wrong number of rows
    (tmp_path / "features" / ".abc.partial").write_bytes(b"left by a killed run")
    again = SumsExtractor()
    fixed = cached_features(again, images, tmp_path, chunk_size=4, batch_size=4)
    assert (fixed.computed, fixed.reused) == (8, 0) and np.array_equal(fixed.features, run.features)
    assert "computing it again" in caplog.text
    assert cached_features(SumsExtractor(), images, tmp_path, chunk_size=4).reused == 8  # repaired


@pytest.mark.slow
def test_a_killed_process_resumes_where_it_stopped(tmp_path):
    """SIGKILL a real process in the middle of its run; a second run computes only what was not saved."""
    images = uint8_images(24, seed=3)
    torch.save(images, tmp_path / "images.pt")
    script = textwrap.dedent(
        f"""
        import time, torch
        from training.metrics.feature_cache import cached_features

        class Slow:
            key = "sums-v1"
            def __call__(self, images):
                time.sleep(0.3)
                x = images.to(torch.int64)
                return torch.cat([x.sum(dim=2), x.sum(dim=1)], dim=1).to(torch.float32).numpy()

        images = torch.load({str(tmp_path / "images.pt")!r})
        cached_features(Slow(), images, {str(tmp_path / "cache")!r}, chunk_size=4, batch_size=2)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    folder = tmp_path / "cache" / "features"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(folder.glob("*.npy"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(folder.glob("*.npy")))
    assert 2 <= done < 6, "the process should have been killed part of the way through"
    resumed = SumsExtractor()
    run = cached_features(resumed, images, tmp_path / "cache", chunk_size=4, batch_size=2)
    assert run.reused == 4 * done and run.computed == 24 - 4 * done and resumed.batches == run.computed // 2
    assert np.array_equal(run.features, compute_features(SumsExtractor(), images))


# The real set's statistics -----------------------------------------------------------------------


def test_real_statistics_are_computed_once(tmp_path):
    real = uint8_images(30, seed=1)
    first = SumsExtractor()
    a = cached_stats(first, real, tmp_path, name="tiny-test", chunk_size=8, batch_size=4)
    assert not a.from_cache and first.batches == 8 and a.path.is_file()
    assert a.path == stats_path(first, real, tmp_path, "tiny-test") and a.path.name.startswith("tiny-test-30-")
    mu, sigma = gaussian_stats(compute_features(SumsExtractor(), real))
    np.testing.assert_array_equal(a.mu, mu)
    np.testing.assert_array_equal(a.sigma, sigma)
    second = SumsExtractor()
    b = cached_stats(second, real, tmp_path, name="tiny-test", chunk_size=8, batch_size=4)
    assert b.from_cache and second.batches == 0 and b.features is None
    np.testing.assert_array_equal(b.sigma, a.sigma)
    # Other weights or other images: other statistics.
    assert not cached_stats(SumsExtractor("sums-v2"), real, tmp_path, name="tiny-test").from_cache
    assert not cached_stats(SumsExtractor(), real[:20], tmp_path, name="tiny-test").from_cache


# FID at several sizes through the cache -----------------------------------------------------------------


def test_fids_at_several_sizes_match_the_direct_computation_and_rerun_from_the_cache(tmp_path):
    generated, real = uint8_images(40, seed=2), uint8_images(30, seed=1)
    subset = torch.tensor([1, 4, 7, 9, 12, 18, 25, 29])
    sizes = {8: subset, 40: None}  # 8 generated vs 8 real of the subset; 40 vs the whole real set
    out = fids_with_cache(SumsExtractor(), generated, real, sizes, tmp_path, real_name="tiny", chunk_size=8)
    gen_f = compute_features(SumsExtractor(), generated)
    real_f = compute_features(SumsExtractor(), real)
    small, large = out["by_samples"]
    assert small == {
        "generated_images": 8,
        "real_images": 8,
        "real_set": "subset",
        "fid": pytest.approx(fid_from_features(gen_f[:8], real_f[subset.numpy()])),
    }
    assert large["real_images"] == 30 and large["real_set"] == "all"
    assert large["fid"] == pytest.approx(fid_from_features(gen_f, real_f))
    assert out["fid"] == large["fid"] and out["generated_images"] == 40
    timing = out["timing"]
    assert timing["images_computed"] == 70 and timing["images_from_cache"] == 0
    assert not timing["real_stats_from_cache"]
    # Again: nothing computed; the real statistics come from their file.
    again = fids_with_cache(SumsExtractor(), generated, real, sizes, tmp_path, real_name="tiny", chunk_size=8)
    assert again["by_samples"] == out["by_samples"]
    assert again["timing"]["images_computed"] == 0 and again["timing"]["real_stats_from_cache"]
    assert again["timing"]["seconds_per_1000_images"] is None
    # The small size alone, later: its generated images are the first chunk of the large set's, and its real
    # subset's features come from the whole set's cached chunks.
    alone = SumsExtractor()
    small_only = fids_with_cache(alone, generated, real, {8: subset}, tmp_path, real_name="tiny", chunk_size=8)
    assert small_only["fid"] == pytest.approx(small["fid"]) and alone.batches == 0
    with pytest.raises(ValueError, match="at most the 40 generated"):
        fids_with_cache(SumsExtractor(), generated, real, {50: None}, tmp_path, real_name="tiny")
