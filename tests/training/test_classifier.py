"""The reference classifier: network contract, training recipe, command, and the shipped weights."""

from __future__ import annotations

import json

import pytest
import torch

from models import WEIGHTS_DIR, Classifier, ClassifierConfig, load_model, save_model
from tests.conftest import make_fake_split, requires_real_data
from training.cli import main
from training.data import Split, load_split
from training.metrics.gan_train import Recipe, accuracy_on, augment, fit_classifier, lr_factor

TINY = Recipe(epochs=3, batch_size=32, lr=3e-3, channels=4, feature_dim=16, shift=1)
SHIPPED = WEIGHTS_DIR / "classifier"


def band_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = make_fake_split(n, seed)  # class k: a bright band at rows 2k..2k+8
    return torch.from_numpy(images), torch.from_numpy(labels).long()


def test_outputs_and_features():
    model = Classifier(ClassifierConfig(channels=4, feature_dim=16)).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    logits, feats = model(x, return_features=True)
    assert logits.shape == (5, 10) and feats.shape == (5, 16)
    assert (feats >= 0).all()  # post-ReLU, like Inception's pool3
    assert torch.equal(model(x), logits) and torch.equal(model.features(x), feats)


def test_rejects_wrong_shapes_and_settings():
    model = Classifier(ClassifierConfig(channels=4))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="at least 2 classes"):
        Classifier(ClassifierConfig(num_classes=1))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(channels=4, feature_dim=16)).eval()
    save_model(model, tmp_path / "clf", metrics={"test_accuracy": 0.5})
    loaded = load_model(tmp_path / "clf", expected=Classifier)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(loaded(x), model(x))
    assert loaded.checkpoint["metrics"]["test_accuracy"] == 0.5


def test_augment_flips_and_shifts_deterministically():
    images = torch.zeros(64, 28, 28, dtype=torch.uint8)
    images[:, 10:12, 3:6] = 200  # a small blob left of centre
    a = augment(images, flip=True, shift=2, generator=torch.Generator().manual_seed(0))
    b = augment(images, flip=True, shift=2, generator=torch.Generator().manual_seed(0))
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)
    assert (a.flatten(1).sum(1) == images.flatten(1).sum(1)).all()  # a 2 px shift keeps the whole blob
    assert len({tuple(img.nonzero()[0].tolist()) for img in a}) > 5  # and puts it in many places
    flipped = augment(images, flip=True, shift=0, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images, strict=True))


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.05) and max(factors) == pytest.approx(1.0)
    assert factors.index(max(factors)) == 19 and factors[-1] < 0.01
    assert lr_factor(0, 1) == 1.0  # a one-step schedule still takes its step


def test_fit_learns_and_is_deterministic():
    images, labels = band_data(320, 0)
    test_images, test_labels = band_data(100, 1)
    a = fit_classifier(images, labels, TINY, seed=0)
    b = fit_classifier(images, labels, TINY, seed=0)
    c = fit_classifier(images, labels, TINY, seed=1)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    assert accuracy_on(a, Split(test_images, test_labels)).overall >= 0.8  # chance is 0.1; the bands are easy


def test_fit_leaves_global_rng_alone():
    images, labels = band_data(64, 0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_classifier(images, labels, Recipe(epochs=1, batch_size=32, channels=2, feature_dim=4), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_fit_wants_uint8_images():
    with pytest.raises(TypeError, match="uint8"):
        fit_classifier(torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.long), TINY, seed=0)


def test_train_classifier_command(tiny_data, tmp_path):
    out = tmp_path / "clf"
    argv = ["train-classifier", "--out", str(out), "--epochs", "2", "--channels", "4", "--feature-dim", "16"]
    assert main([*argv, "--batch-size", "32", "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["class_name"] == "Classifier"
    assert config["training"]["train_images"] == 200 and config["training"]["recipe"]["epochs"] == 2
    assert config["metrics"]["test_images"] == 50
    model = load_model(out, expected=Classifier)
    recorded = config["metrics"]["test_accuracy"]
    assert accuracy_on(model, load_split("test")).overall == pytest.approx(recorded)


def test_shipped_classifier_loads_and_records_its_accuracy():
    model = load_model(SHIPPED, expected=Classifier)
    metrics = model.checkpoint["metrics"]
    assert metrics["test_accuracy"] >= 0.93 and metrics["test_images"] == 10_000
    assert model.checkpoint["training"]["dataset"] == "fashion-mnist"
    assert model.config.feature_dim == model(torch.zeros(1, 1, 28, 28), return_features=True)[1].shape[1]


@pytest.mark.slow
@pytest.mark.realdata
@requires_real_data
def test_shipped_classifier_reaches_its_recorded_accuracy():
    model = load_model(SHIPPED, expected=Classifier)
    test = load_split("test", download=False)
    # The whole test set: the recorded figure was measured on exactly these images.
    measured = accuracy_on(model, test).overall
    assert measured == pytest.approx(model.checkpoint["metrics"]["test_accuracy"], abs=1e-4)
