"""Truncation (models.truncate): psi = 1 leaves the latents as drawn, psi < 1 pulls each one straight toward
the prior's mean (zero for N(0, I)) by the factor psi, deterministically per seed; bad psi are refused."""

from __future__ import annotations

import math

import pytest
import torch

from models import TRUNCATION_RANGE, check_truncation, noise, truncate
from models.latents import prior_mean


def test_psi_one_leaves_the_latents_unchanged_to_the_bit() -> None:
    z = noise(range(16), 128)
    assert truncate(z, 1.0) is z
    assert torch.equal(noise(range(16), 128, truncation=1), z)


@pytest.mark.parametrize("psi", [0.8, 0.6, 0.25])
def test_psi_below_one_moves_every_latent_toward_the_mean_by_psi(psi: float) -> None:
    z = noise(range(64), 128)  # (64, 128)
    t = noise(range(64), 128, truncation=psi)
    mean = prior_mean(128)
    assert torch.equal(mean, torch.zeros(128))  # the mean of N(0, I)
    # The distance to the mean shrinks by psi for every row ...
    ratio = (t - mean).norm(dim=1) / (z - mean).norm(dim=1)
    torch.testing.assert_close(ratio, torch.full((64,), psi), rtol=1e-6, atol=0)
    # ... along the same direction: a point on the segment from the mean to the latent.
    torch.testing.assert_close(t, mean + psi * (z - mean), rtol=0, atol=0)
    assert ((t - mean).norm(dim=1) < (z - mean).norm(dim=1)).all()


def test_truncated_latents_are_deterministic_per_seed_and_batch_independent() -> None:
    a = noise([5, 6, 7], 32, truncation=0.7)
    assert torch.equal(a, noise([5, 6, 7], 32, truncation=0.7))
    assert torch.equal(a[1], noise([6], 32, truncation=0.7)[0])  # a row depends on its own seed only
    assert not torch.equal(a, noise([5, 6, 7], 32, truncation=0.6))


@pytest.mark.parametrize("psi", [0, 0.0, -0.5, 1.0000001, 2, math.nan, math.inf, -math.inf, "abc", None])
def test_bad_psi_is_refused_naming_the_range(psi) -> None:
    with pytest.raises(ValueError, match="greater than 0 and at most 1") as refused:
        check_truncation(psi)
    assert TRUNCATION_RANGE in str(refused.value)
    with pytest.raises(ValueError, match="0 < psi <= 1"):
        truncate(torch.zeros(1, 4), psi)


def test_accepted_psi() -> None:
    assert check_truncation(1) == 1.0
    assert check_truncation("0.8") == 0.8
    assert check_truncation(1e-9) == 1e-9
