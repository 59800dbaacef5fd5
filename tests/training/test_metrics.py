"""Each metric on small inputs whose answer is known in closed form or by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from training.metrics.detection import (
    accuracy_at,
    detection_figures,
    detection_figures_from_logits,
    expected_calibration_error,
    probabilities_from_logits,
    roc_auc,
)
from training.metrics.fid import fid_from_features, frechet_distance, gaussian_stats
from training.metrics.gan_test import class_accuracy, gan_test
from training.metrics.precision_recall import (
    knn_radii,
    manifold_coverage,
    per_class_precision_recall,
    precision_recall,
)


def random_spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def random_rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# Fréchet distance -------------------------------------------------------------------------------


def test_identical_gaussians_are_at_distance_zero():
    mu, sigma = np.arange(6.0), random_spd(6, 0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_mean_shift_alone_gives_squared_distance_of_means():
    sigma = random_spd(5, 1)
    mu1, mu2 = np.zeros(5), np.array([1.0, -2.0, 0.0, 3.0, 0.5])
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(1 + 4 + 9 + 0.25, rel=1e-9)


def test_one_dimension_closed_form():
    # N(m1, s1²) vs N(m2, s2²): (m1 - m2)² + (s1 - s2)².
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    assert frechet_distance(1.0, 4.0, 3.0, 9.0) == pytest.approx(5.0)  # scalars are 1-D Gaussians


def test_scaled_identities():
    d, a, b = 7, 2.0, 0.5
    got = frechet_distance(np.zeros(d), a**2 * np.eye(d), np.ones(d), b**2 * np.eye(d))
    assert got == pytest.approx(d * 1.0 + d * (a - b) ** 2)


def test_commuting_covariances_closed_form():
    # Same eigenvectors: d² = sum (sqrt(a_i) - sqrt(b_i))², whatever the rotation.
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    q = random_rotation(4, 2)
    expected = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(np.zeros(4), np.diag(a), np.zeros(4), np.diag(b)) == pytest.approx(expected)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected, rel=1e-9)


def test_general_case_matches_the_textbook_formula_and_is_symmetric():
    s1, s2 = random_spd(8, 3), random_spd(8, 4)
    mu1, mu2 = np.linspace(0, 1, 8), np.linspace(1, 0, 8)
    reference = float(
        (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    )
    got = frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(reference, rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)


def test_singular_covariances_are_exact():
    d = 5
    # A point mass against the standard normal: tr(I) = d.
    assert frechet_distance(np.zeros(d), np.zeros((d, d)), np.zeros(d), np.eye(d)) == pytest.approx(d)
    # Rank 1 against rank 1 on orthogonal axes: 1 + 1 (no overlap to subtract).
    e1, e2 = np.eye(d)[0], np.eye(d)[1]
    assert frechet_distance(np.zeros(d), np.outer(e1, e1), np.zeros(d), np.outer(e2, e2)) == pytest.approx(2.0)
    # Fewer samples than dimensions: a singular covariance, and still zero distance to itself.
    few = np.random.default_rng(5).normal(size=(4, 32))
    assert fid_from_features(few, few) == pytest.approx(0.0, abs=1e-9)


def test_distance_is_never_negative():
    mu, sigma = np.zeros(64), random_spd(64, 6) * 1e6  # large values: round-off well above 1e-12
    assert frechet_distance(mu, sigma, mu, sigma) >= 0.0


def test_sample_statistics_of_known_gaussians():
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, size=(20000, 3))
    y = rng.normal(0.0, 2.0, size=(20000, 3)) + 1.0
    # Exact answer 3 * 1 + 3 * (2 - 1)² = 6, up to sampling error.
    assert fid_from_features(x, y) == pytest.approx(6.0, abs=0.15)
    mu, sigma = gaussian_stats(x)
    assert mu.shape == (3,) and sigma.shape == (3, 3)


def test_fid_rejects_bad_input():
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="not positive semi-definite"):
        frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_stats(np.zeros((1, 4)))


# Precision and recall ---------------------------------------------------------------------------


def test_identical_sets_have_full_precision_and_recall():
    f = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    pr = precision_recall(f, f.clone(), k=3)
    assert (pr.precision, pr.recall) == (1.0, 1.0)


def test_disjoint_sets_have_zero_precision_and_recall():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 100.0
    pr = precision_recall(real, fake)
    assert (pr.precision, pr.recall) == (0.0, 0.0)


def test_dropped_mode_costs_recall_not_precision():
    g = torch.Generator().manual_seed(2)
    mode_a, mode_b = torch.randn(100, 4, generator=g), torch.randn(100, 4, generator=g) + 50.0
    real = torch.cat([mode_a, mode_b])
    pr = precision_recall(real, mode_a.clone())  # the generator reproduces mode A only
    assert pr.precision == 1.0 and pr.recall == 0.5


def test_hand_computed_one_dimensional_case():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0]])
    # k = 1: every real radius is 1, so 0.5 is inside and 10 is not.
    assert knn_radii(real, 1).tolist() == [1.0, 1.0, 1.0, 1.0]  # squared distances
    assert manifold_coverage(fake, real, knn_radii(real, 1)) == 0.5
    # The two fakes are 9.5 apart: a ball of radius 9.5 around 0.5 holds every real point.
    pr = precision_recall(real, fake, k=1)
    assert (pr.precision, pr.recall) == (0.5, 1.0)


def test_precision_recall_do_not_depend_on_batching():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(257, 6, generator=g), torch.randn(300, 6, generator=g) * 1.3
    a = precision_recall(real, fake, batch_size=1024)
    b = precision_recall(real, fake, batch_size=17)
    assert (a.precision, a.recall) == (b.precision, b.recall)
    assert 0.0 < a.precision < 1.0 and 0.0 < a.recall < 1.0


def test_knn_needs_more_samples_than_k():
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(torch.zeros(3, 2), 3)


def test_per_class_precision_recall_finds_the_class_that_collapsed():
    g = torch.Generator().manual_seed(4)
    # Three classes, far apart, 60 real samples each; the generator's class 0 collapses onto one point
    # (the centre of the real class), class 1 is a fresh draw from the real distribution, class 2 copies the reals.
    centres = torch.tensor([[0.0] * 6, [40.0] * 6, [-40.0] * 6])
    real = torch.cat([centres[c] + torch.randn(60, 6, generator=g) for c in range(3)])
    real_labels = torch.arange(3).repeat_interleave(60)
    fake = torch.cat([centres[0].expand(50, 6), centres[1] + torch.randn(50, 6, generator=g), real[120:180]])
    fake_labels = torch.tensor([0] * 50 + [1] * 50 + [2] * 60)
    collapsed, fresh, copied = per_class_precision_recall(real, real_labels, fake, fake_labels, 3, k=3)
    # A point mass is realistic (inside the real manifold) but covers nothing: its k-NN radius is 0.
    assert collapsed.precision == 1.0 and collapsed.recall == 0.0
    assert copied.precision == 1.0 and copied.recall == 1.0
    assert 0.6 < fresh.precision <= 1.0 and 0.6 < fresh.recall <= 1.0
    # Each class on its own, with the same k: exactly the overall function on that class's samples.
    alone = precision_recall(real[60:120], fake[50:100], k=3)
    assert (fresh.precision, fresh.recall) == (alone.precision, alone.recall)
    # The overall figure dilutes the collapse over the three classes.
    overall = precision_recall(real, fake, k=3)
    assert overall.recall > 0.6 > collapsed.recall


def test_per_class_precision_recall_skips_classes_too_small_for_k_and_checks_labels():
    feats = torch.randn(20, 3, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 3)  # class 2: 3 samples, not more than k = 3
    out = per_class_precision_recall(feats, labels, feats.clone(), labels.clone(), 4, k=3)
    assert out[0] is not None and out[0].recall == 1.0 and out[1] is not None
    assert out[2] is None and out[3] is None  # too few, and no samples at all
    with pytest.raises(ValueError, match="one label per sample"):
        per_class_precision_recall(feats, labels[:5], feats, labels, 3)


# GAN-test ---------------------------------------------------------------------------------------


def test_classifier_that_is_always_right_gives_gan_test_of_one():
    requested = torch.arange(50) % 10
    logits = torch.nn.functional.one_hot(requested, 10).float() * 5.0  # (50, 10): always the requested class
    acc = gan_test(logits, requested)
    assert acc.overall == 1.0 and acc.per_class == [1.0] * 10 and acc.counts == [5] * 10


def test_class_accuracy_by_hand():
    predictions = torch.tensor([0, 0, 1, 2, 2, 2])
    targets = torch.tensor([0, 1, 1, 2, 2, 0])
    acc = class_accuracy(predictions, targets, num_classes=4)
    assert acc.overall == pytest.approx(4 / 6)
    assert acc.per_class == [0.5, 0.5, 1.0, None]  # class 3 has no samples
    assert acc.counts == [2, 2, 2, 0]
    assert acc.to_json()["overall"] == pytest.approx(4 / 6)


def test_class_accuracy_rejects_out_of_range_targets():
    with pytest.raises(ValueError, match="class ids"):
        class_accuracy(torch.tensor([0]), torch.tensor([10]), num_classes=10)


# Detection --------------------------------------------------------------------------------------


def test_detection_figures_by_hand():
    p = [0.9, 0.8, 0.3, 0.2]  # real, real, fake, fake: all right
    t = [1, 1, 0, 0]
    f = detection_figures(p, t)
    assert f.accuracy == 1.0 and f.accuracy_real == 1.0 and f.accuracy_fake == 1.0
    assert f.roc_auc == 1.0
    # Confidences 0.9, 0.8, 0.7, 0.8, all correct, each in its own bin group:
    # ECE = 1/4 * 0.1 + 2/4 * 0.2 + 1/4 * 0.3 = 0.2.
    assert f.ece == pytest.approx(0.2)
    assert (f.n_real, f.n_fake) == (2, 2)


def test_roc_auc_counts_pairs_and_ties():
    assert roc_auc([0.8, 0.4, 0.6, 0.2], [1, 1, 0, 0]) == pytest.approx(3 / 4)  # 3 of 4 pairs ordered
    assert roc_auc([0.5] * 6, [1, 0, 1, 0, 1, 0]) == pytest.approx(0.5)  # all tied: one half each
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0  # perfectly reversed
    with pytest.raises(ValueError, match="both real"):
        roc_auc([0.1, 0.2], [1, 1])


def test_perfectly_calibrated_detector_has_zero_ece():
    # Every image gets P(real) = 0.75, and 6 of 8 are real: confidence 0.75, accuracy 0.75.
    assert expected_calibration_error([0.75] * 8, [1, 1, 1, 1, 1, 1, 0, 0]) == pytest.approx(0.0)
    # The same scores with half of them real: accuracy 0.5 against confidence 0.75.
    assert expected_calibration_error([0.75] * 8, [1, 0] * 4) == pytest.approx(0.25)


def test_threshold_and_logit_conventions():
    assert accuracy_at([0.5, 0.51], [0, 1]) == 1.0  # P(real) = 0.5 exactly is called fake
    assert accuracy_at([0.6, 0.7], [1, 1], threshold=0.65) == 0.5
    p = probabilities_from_logits([0.0, 2.0, -2.0], temperature=2.0)
    assert p == pytest.approx([0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))])
    # Logits of 60 and 50 both round to P = 1.0; AUC still sees that both beat the fake's 40.
    f = detection_figures_from_logits([60.0, 50.0, 40.0], [1, 1, 0])
    assert f.roc_auc == 1.0 and f.accuracy == pytest.approx(2 / 3)


def test_detection_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        detection_figures([1.5, 0.2], [1, 0])
    with pytest.raises(ValueError, match="1 \\(real\\) or 0"):
        detection_figures([0.5, 0.2], [2, 0])
    with pytest.raises(ValueError, match="temperature"):
        probabilities_from_logits([1.0], temperature=0.0)


def test_tpr_at_fpr_by_hand():
    from training.metrics.detection import tpr_at_fpr

    # 100 reals scoring 1..100 (higher = more real): at 1% FPR one real may fall below the threshold, which is
    # the second lowest real's score, 2; at 5% it is the sixth lowest, 6; at 0% the lowest, 1.
    reals = np.arange(1, 101, dtype=float)
    fakes = np.array([-3.0, 0.5, 1.0, 2.0, 5.5, 50.0])
    scores, targets = np.r_[reals, fakes], np.r_[np.ones(100), np.zeros(6)]
    assert tpr_at_fpr(scores, targets, 0.01) == pytest.approx(3 / 6)  # -3, 0.5 and 1.0
    assert tpr_at_fpr(scores, targets, 0.05) == pytest.approx(5 / 6)  # all but 50
    assert tpr_at_fpr(scores, targets, 0.0) == pytest.approx(2 / 6)  # 1.0 ties with a real: not caught
    with pytest.raises(ValueError, match="both real"):
        tpr_at_fpr(reals, np.ones(100))
    with pytest.raises(ValueError, match="fpr must be in"):
        tpr_at_fpr(scores, targets, 1.0)
