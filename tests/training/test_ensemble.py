"""Detector ensembles: the network, its checkpoint, and the ensemble-detector command."""

from __future__ import annotations

import json

import pytest
import torch

from models import (
    DETECTORS,
    CheckpointError,
    Detector,
    DetectorConfig,
    DetectorEnsemble,
    DetectorEnsembleConfig,
    build_model,
    load_model,
    save_model,
)
from tests.training.test_detector import TINY, TINY_ANY_WIDTH
from training.cli import main
from training.detector import predict_logits


def _members(seed: int = 0) -> list[Detector]:
    torch.manual_seed(seed)
    return [Detector(DetectorConfig(channels=4)).eval(), Detector(DetectorConfig(channels=6)).eval()]


def test_the_ensemble_logit_is_the_mean_of_its_members_with_and_without_labels():
    a, b = _members()
    ensemble = DetectorEnsemble.of([a, b]).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        for y in (torch.tensor([0, 3, -1, 9, 2]), None):
            torch.testing.assert_close(ensemble(x, y), (a(x, y) + b(x, y)) / 2)
        assert not torch.allclose(a(x), b(x))  # members that agreed could not show the mean
    assert ensemble.conditional and ensemble.unknown_label == 10


def test_an_ensemble_round_trips_through_its_checkpoint(tmp_path):
    ensemble = DetectorEnsemble.of(_members()).eval()
    save_model(ensemble, tmp_path / "e", metrics={"temperature": 1.5})
    config = json.loads((tmp_path / "e" / "config.json").read_text())
    assert config["class_name"] == "DetectorEnsemble"
    assert [m["channels"] for m in config["config"]["members"]] == [4, 6]
    loaded = load_model(tmp_path / "e", expected=DETECTORS)
    assert isinstance(loaded, DetectorEnsemble)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), ensemble(x))
    assert isinstance(load_model(save_model(_members()[0], tmp_path / "d"), expected=DETECTORS), Detector)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([{"channels": 4}], "at least two members"),
        ([{"channels": 4}, {"channels": 4, "num_classes": 0}], "the same labels"),
        ([{"channels": 4}, {"channels": 4, "width": 3}], "unknown Detector settings ['width']"),
    ],
)
def test_bad_ensemble_settings_are_refused_with_the_reason(members, message):
    with pytest.raises(CheckpointError, match="cannot build DetectorEnsemble") as err:
        build_model("DetectorEnsemble", {"members": members})
    assert message in str(err.value)
    with pytest.raises(ValueError, match="at least two"):
        DetectorEnsemble(DetectorEnsembleConfig(members=[]))


# The ensemble-detector command ------------------------------------------------------------------

TINY_ENSEMBLE = ["--test-samples", "24", "--device", "cpu"]


@pytest.fixture
def two_detectors(tiny_data, tmp_path, generators):
    """Two tiny detectors on the same validation split: one trained, one widened and trained further from it."""
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["train-detector", "--generator", str(generators[0])]
    assert main([*base, "--out", str(first), *TINY]) == 0
    wider = [*TINY_ANY_WIDTH, "--channels", "6", "--stream-seed", "1"]
    assert main([*base, "--out", str(second), "--init", str(first / "detector"), *wider]) == 0
    return first / "detector", second / "detector"


def test_ensemble_detector_exports_a_calibrated_ensemble_with_its_test_figures(
    two_detectors,
    tmp_path,
    generators,
):
    first, second = two_detectors
    run = tmp_path / "ens"
    args = ["ensemble-detector", "--out", str(run), "--member", str(first), "--member", str(second)]
    args += ["--generator", str(generators[0]), "--holdout-generator", str(generators[1]), *TINY_ENSEMBLE]
    assert main(args) == 0

    ensemble = load_model(run / "detector", expected=DetectorEnsemble)
    config = json.loads((run / "detector" / "config.json").read_text())
    metrics, training = config["metrics"], config["training"]
    assert metrics["temperature"] > 0 and metrics["calibration_samples"] == 80  # the members' 40 reals + 40 fakes
    assert set(metrics["test"]) == {f"seen:{generators[0]}", f"unseen:{generators[1]}"}
    figures = metrics["test"][f"seen:{generators[0]}"]["jpeg75"]["labelled"]
    assert figures["n_real"] == figures["n_fake"] == 24
    assert [m["path"] for m in training["members"]] == [str(first), str(second)]
    assert [m["channels"] for m in training["members"]] == [4, 6]
    assert training["members"][1]["init"]["path"] == str(first)
    assert (training["seed"], training["val_images"], training["train_images"]) == (0, 40, 160)
    assert json.loads((run / "options.json").read_text())["members"] == [str(first), str(second)]

    # Its logits are the mean of the members' as they were saved.
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([0, 1, -1, 2, -1, 3])
    a, b = (load_model(p, expected=Detector) for p in (first, second))
    cpu = torch.device("cpu")
    expected = (predict_logits(a, images, labels, cpu) + predict_logits(b, images, labels, cpu)) / 2
    torch.testing.assert_close(predict_logits(ensemble, images, labels, cpu), expected)


def test_ensemble_detector_refuses_members_with_another_validation_split(
    two_detectors,
    tmp_path,
    generators,
    caplog,
):
    first, _ = two_detectors
    other = tmp_path / "other"
    assert main(["train-detector", "--generator", str(generators[0]), "--out", str(other), *TINY, "--seed", "1"]) == 0
    run = tmp_path / "ens"
    args = ["ensemble-detector", "--out", str(run), "--member", str(first), "--member", str(other / "detector")]
    assert main([*args, "--generator", str(generators[0]), *TINY_ENSEMBLE]) == 2
    assert "another validation split" in caplog.text and "seed 1 (first member 0)" in caplog.text
    assert not run.exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("members", "message"),
    [(1, "at least two --member"), (2, "each --member must be a different detector")],
)
def test_ensemble_detector_needs_two_different_members(
    two_detectors,
    tmp_path,
    generators,
    caplog,
    members,
    message,
):
    first, _ = two_detectors
    args = ["ensemble-detector", "--out", str(tmp_path / "ens"), "--generator", str(generators[0]), *TINY_ENSEMBLE]
    assert main([*args, *["--member", str(first)] * members]) == 2
    assert message in caplog.text
