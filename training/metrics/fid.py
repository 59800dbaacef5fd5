"""Fréchet distance between two Gaussians, and the Gaussian statistics of a feature set.

FID (Heusel et al. 2017) fits a Gaussian to each set of features and measures

    d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

``frechet_distance`` is the pure math on (mu, sigma) pairs, tested against
closed-form answers; ``gaussian_stats`` turns an (N, D) feature matrix into such
a pair. Which features (the reference classifier's, Inception's) is the caller's
business: see ``training.metrics.features`` and ``training.metrics.inception``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# An eigenvalue below -NEG_TOL * (largest |eigenvalue|) is not round-off: the matrix is not a covariance.
NEG_TOL = 1e-6


def gaussian_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), both float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"expected features of shape (N, D), got {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError("features hold NaN or infinite values")
    mu = f.mean(axis=0)  # (D,)
    sigma = np.atleast_2d(np.cov(f, rowvar=False))  # (D, D); atleast_2d because D = 1 gives a 0-d array
    return mu, sigma


def _psd_sqrt(sigma: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix, by eigendecomposition."""
    w, v = np.linalg.eigh(sigma)  # w ascending, v orthonormal columns
    scale = max(float(np.abs(w).max()), np.finfo(np.float64).tiny)
    if w[0] < -NEG_TOL * scale:
        raise ValueError(f"{name} is not positive semi-definite (eigenvalue {w[0]:.3g}); is it a covariance?")
    # Round-off turns the zero eigenvalues of a singular covariance (fewer samples than
    # dimensions, or a feature that never fires) into tiny negatives: clip them to 0.
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _check(mu: ArrayLike, sigma: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu_a = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma_a = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    d = mu_a.shape[0]
    if mu_a.ndim != 1 or sigma_a.shape != (d, d):
        raise ValueError(f"{name}: mean of shape {mu_a.shape} and covariance of shape {sigma_a.shape} do not match")
    if not (np.isfinite(mu_a).all() and np.isfinite(sigma_a).all()):
        raise ValueError(f"{name}: mean or covariance holds NaN or infinite values")
    # A covariance computed in floating point can differ from its transpose in the last bits,
    # and eigh reads one triangle only: average the two so that no information is dropped.
    return mu_a, (sigma_a + sigma_a.T) / 2


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^(1/2)) is computed without a general matrix square root: with
    R = S1^(1/2), the product S1 S2 = R (R S2) has the same eigenvalues as the
    symmetric positive semi-definite R S2 R, whose eigenvalues are real and
    non-negative. So two symmetric eigendecompositions replace ``scipy.linalg.sqrtm``,
    which returns complex values with spurious imaginary parts and loses accuracy
    (pytorch-fid adds eps * I and retries) when S1 S2 is singular. Singular
    covariances (fewer samples than dimensions, dead features) are therefore exact here.
    """
    mu1_a, s1 = _check(mu1, sigma1, "first Gaussian")
    mu2_a, s2 = _check(mu2, sigma2, "second Gaussian")
    if mu1_a.shape != mu2_a.shape:
        raise ValueError(f"dimensions differ: {mu1_a.shape[0]} and {mu2_a.shape[0]}")
    _psd_sqrt(s2, "second covariance")  # validates S2; its root itself is not needed
    root1 = _psd_sqrt(s1, "first covariance")
    inner = root1 @ s2 @ root1  # (D, D): symmetric PSD in exact arithmetic
    inner = (inner + inner.T) / 2  # remove the asymmetry that round-off adds
    eig = np.linalg.eigvalsh(inner)
    # Same round-off as above: eigenvalues that are exactly 0 come out as tiny negatives.
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1_a - mu2_a
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    # Identical Gaussians give exactly 0 in exact arithmetic and about -1e-12 in floating point;
    # a distance is never negative.
    return max(value, 0.0)


def fid_from_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """FID between two (N, D) feature sets (their sizes may differ)."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))
