"""How well a real/fake detector separates real images from generated ones.

Pure functions of (probabilities or logits, targets): targets are 1 for a real
image and 0 for a generated one, and a score is the model's belief that the
image is real (a logit, or its sigmoid). The discriminator, the detector and the
service share these conventions, so the same functions measure all of them.

- accuracy at a threshold: "real" when P(real) > threshold (so a logit of exactly 0 says "fake");
- ROC AUC: the probability that a random real image scores above a random fake
  one, ties counting one half (threshold-free: a detector that ranks well but
  is miscalibrated still scores high);
- expected calibration error (Guo et al. 2017), top-label form: the confidence
  of a decision is max(p, 1 - p) in [0.5, 1] (what the service reports), binned
  into equal-width bins over [0.5, 1]; ECE is the sample-weighted mean gap
  between each bin's accuracy and its mean confidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit
from scipy.stats import rankdata

DEFAULT_BINS = 10


def _targets(targets: ArrayLike, n: int) -> np.ndarray:
    t = np.asarray(targets)
    if t.shape != (n,):
        raise ValueError(f"expected {n} targets, got shape {t.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("targets must be 1 (real) or 0 (fake)")
    return t.astype(bool)


def _vector(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: holds NaN or infinite values")
    return a


def _probabilities(p: ArrayLike) -> np.ndarray:
    a = _vector(p, "probabilities")
    if (a < 0).any() or (a > 1).any():
        raise ValueError("probabilities must lie in [0, 1] (pass logits through probabilities_from_logits)")
    return a


def probabilities_from_logits(logits: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    """P(real) = sigmoid(logit / temperature); a calibrated detector carries its temperature."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return expit(_vector(logits, "logits") / temperature)  # expit never overflows, unlike 1 / (1 + exp(-x))


def accuracy_at(probabilities: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of correct real/fake decisions, deciding "real" when P(real) > threshold."""
    p = _probabilities(probabilities)
    t = _targets(targets, p.size)
    return float(((p > threshold) == t).mean())


def roc_auc(scores: ArrayLike, targets: ArrayLike) -> float:
    """Area under the ROC curve of any monotone score (logits or probabilities), ties counting one half.

    Computed as the Mann-Whitney U statistic: the sum of the real images' ranks among
    all scores (tied scores share their average rank), less its minimum, over
    n_real * n_fake.
    """
    s = _vector(scores, "scores")
    t = _targets(targets, s.size)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both real (1) and fake (0) targets")
    ranks = rankdata(s)  # 1-based, average ranks for ties
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def expected_calibration_error(probabilities: ArrayLike, targets: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE of a binary real/fake decision (see the module docstring); 0 is perfectly calibrated."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    p = _probabilities(probabilities)
    t = _targets(targets, p.size)
    predicted_real = p > 0.5
    confidence = np.where(predicted_real, p, 1.0 - p)  # (N,) in [0.5, 1]
    correct = (predicted_real == t).astype(np.float64)  # (N,)
    # Bin i covers [0.5 + i w, 0.5 + (i+1) w) with w = 0.5 / n_bins; confidence 1 goes into the last bin.
    bins = np.minimum(((confidence - 0.5) * 2.0 * n_bins).astype(np.int64), n_bins - 1)  # (N,)
    gap = np.bincount(bins, weights=correct - confidence, minlength=n_bins)  # (n_bins,) sums of acc - conf
    return float(np.abs(gap).sum() / p.size)


def tpr_at_fpr(scores: ArrayLike, targets: ArrayLike, fpr: float = 0.01) -> float:
    """The share of fakes caught when the threshold lets only ``fpr`` of the real images be called fake.

    ``scores`` rise with belief in "real" (logits or probabilities). The threshold is the ``fpr`` quantile of
    the real images' scores (the lower order statistic, so that at most ``fpr`` of them fall below it); a fake
    is caught when its score lies strictly below it. This is the operating point of a service that must
    rarely accuse a real image: how many fakes does it still catch?
    """
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    s = _vector(scores, "scores")
    t = _targets(targets, s.size)
    real, fake = np.sort(s[t]), s[~t]
    if real.size == 0 or fake.size == 0:
        raise ValueError("TPR at a false-positive rate needs both real (1) and fake (0) targets")
    threshold = real[int(np.floor(fpr * real.size))]  # floor(fpr n) reals lie below it (ties aside)
    return float((fake < threshold).mean())


@dataclass
class DetectionFigures:
    accuracy: float  # at the threshold, over real and fake together
    accuracy_real: float  # real images called real
    accuracy_fake: float  # fake images called fake
    roc_auc: float
    ece: float
    n_real: int
    n_fake: int
    threshold: float
    bins: int

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def detection_figures(
    probabilities: ArrayLike,
    targets: ArrayLike,
    *,
    threshold: float = 0.5,
    n_bins: int = DEFAULT_BINS,
) -> DetectionFigures:
    """Every detection figure from P(real) per image and its 1 (real) / 0 (fake) target."""
    p = _probabilities(probabilities)
    t = _targets(targets, p.size)
    return DetectionFigures(
        accuracy=accuracy_at(p, t, threshold),
        accuracy_real=float((p[t] > threshold).mean()) if t.any() else float("nan"),
        accuracy_fake=float((p[~t] <= threshold).mean()) if (~t).any() else float("nan"),
        roc_auc=roc_auc(p, t),
        ece=expected_calibration_error(p, t, n_bins),
        n_real=int(t.sum()),
        n_fake=int((~t).sum()),
        threshold=threshold,
        bins=n_bins,
    )


def detection_figures_from_logits(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    temperature: float = 1.0,
    threshold: float = 0.5,
    n_bins: int = DEFAULT_BINS,
) -> DetectionFigures:
    """``detection_figures`` for raw logits (positive = real), divided by ``temperature`` first."""
    figures = detection_figures(
        probabilities_from_logits(logits, temperature), targets, threshold=threshold, n_bins=n_bins
    )
    # Rank the logits themselves: the sigmoid rounds every logit above ~37 to exactly 1.0 in
    # float64, which would turn a confident detector's distinct scores into ties.
    figures.roc_auc = roc_auc(logits, targets)
    return figures
