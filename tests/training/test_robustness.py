"""Fake sources (banks) and the robustness report, on tiny detectors and tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from models import Detector, DetectorConfig, save_model
from training.cli import main
from training.detector import predict_logits
from training.fakes import BankError, BankSource, FakeMix, read_bank
from training.robustness import Judge, headline, markdown, robustness_report
from training.transforms import HELD_OUT, SUITE


def write_bank(path, images: np.ndarray, labels: np.ndarray, family: str = "toy") -> str:
    np.savez_compressed(path, images=images, labels=labels, meta=np.array(json.dumps({"family": family})))
    return str(path)


@pytest.fixture
def bank(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (40, 28, 28), dtype=np.uint8)  # dark: the toy judge below calls them fake
    return write_bank(tmp_path / "bank.npz", images, np.arange(40) % 10)


class Brightness(nn.Module):
    """A toy detector: the logit is the mean pixel (in -1..1) times 20, so bright means real."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)) * 20


def test_a_bank_is_read_checked_and_sampled(bank, tmp_path):
    images, _, meta = read_bank(bank)
    assert images.shape == (40, 28, 28) and images.dtype == torch.uint8 and meta["family"] == "toy"
    source = BankSource(bank)
    assert source.family == "toy" and source.conditional
    drawn, drawn_labels = source.sample(25, torch.Generator().manual_seed(0))
    assert drawn.shape == (25, 28, 28) and drawn_labels.shape == (25,)
    # For test figures: one different image per requested label, of that class.
    wanted = torch.tensor([3, 3, 7, 0])
    fakes, carried = source.for_labels(wanted, seed=1)
    assert torch.equal(carried, wanted) and len({f.numpy().tobytes() for f in fakes}) == 4
    assert torch.equal(source.for_labels(wanted, seed=1)[0], fakes)  # seeded
    with pytest.raises(BankError, match="too few images of class 3"):
        source.for_labels(torch.full((5,), 3), seed=0)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 28, 28), np.float32), np.zeros(4), "must be uint8"),
        (np.zeros((4, 14, 14), np.uint8), np.zeros(4), "must be uint8 \\(N, 28, 28\\)"),
        (np.zeros((4, 28, 28), np.uint8), np.full(4, 10), "labels must be 4 ids"),
    ],
)
def test_a_malformed_bank_is_refused_naming_the_file(tmp_path, images, labels, message):
    path = write_bank(tmp_path / "bad.npz", images, labels)
    with pytest.raises(BankError, match=message) as info:
        read_bank(path)
    assert "bad.npz" in str(info.value)
    (tmp_path / "text.npz").write_text("not a bank")
    with pytest.raises(BankError, match=r"text\.npz: not a fake bank"):
        read_bank(tmp_path / "text.npz")


def test_a_mix_shares_batches_between_generators_and_banks(bank, generators):
    mix = FakeMix([str(generators[0]), bank, bank], torch.device("cpu"))
    assert mix.families == ["gan", "toy"] and mix.counts(9) == [3, 6]
    images, labels = mix.sample(9, torch.Generator().manual_seed(0))
    assert images.shape == (9, 28, 28) and images.dtype == torch.uint8 and labels.shape == (9,)
    assert [row["family"] for row in mix.describe()] == ["gan", "toy"]


def test_the_report_has_a_row_per_transformation_and_exact_figures_for_a_known_judge(bank):
    reals = torch.full((20, 28, 28), 200, dtype=torch.uint8)  # bright: the toy judge calls them real
    real_labels = torch.arange(20) % 10
    fakes = {"toy": BankSource(bank).for_labels(real_labels, seed=0)}
    transforms = [SUITE["clean"], SUITE["jpeg75"], HELD_OUT["gamma0.8"]]
    judge = Judge("toy", Brightness(), temperature=1.0)
    report = robustness_report(
        [judge], (reals, real_labels), fakes, transforms, seed=0, device=torch.device("cpu"), predict=predict_logits
    )
    rows = report["figures"]["toy"]
    assert list(rows) == ["clean", "jpeg75", "gamma0.8"]
    assert report["transforms"]["gamma0.8"]["held_out"] and not report["transforms"]["clean"]["held_out"]
    clean = rows["clean"]["sources"]["toy"]
    assert clean["accuracy_real"] == 1.0 and clean["accuracy_fake"] == 1.0 and clean["accuracy"] == 1.0
    assert clean["roc_auc"] == 1.0 and clean["tpr_at_1fpr"] == 1.0
    assert clean["ece"] < 0.01  # logits of +-10 and beyond: confident and right
    assert headline(report, "toy")["clean"] == {
        "real_called_real": 1.0,
        "fake_called_fake_min": 1.0,
        "roc_auc_min": 1.0,
        "tpr_at_1fpr_min": 1.0,
        "ece_max": clean["ece"],
    }
    table = markdown(report)
    assert "| gamma0.8 (o) | 100.0 | 100.0 |" in table and "| clean | 100.0 | 100.0 |" in table


def test_the_robustness_command_writes_json_and_markdown(tmp_path, bank, generators, tiny_data):
    torch.manual_seed(0)
    det = save_model(Detector(DetectorConfig(channels=4)), tmp_path / "det", metrics={"temperature": 2.0})
    out = tmp_path / "rob.json"
    args = ["robustness", "--detector", str(det), "--generator", str(generators[0]), "--bank", bank]
    args += ["--samples", "20", "--transforms", "clean", "blur0.5", "held-out", "--out", str(out), "--record"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["sources"] == ["gan", "toy"] and report["n_real"] == 20
    assert list(report["figures"][str(det)]) == ["clean", "blur0.5", *HELD_OUT]
    assert report["judges"][str(det)]["temperature"] == 2.0
    assert out.with_suffix(".md").read_text().startswith(f"### {det}")
    recorded = json.loads((det / "config.json").read_text())["metrics"]["robustness"]["headline"]
    assert set(recorded) == {"clean", "blur0.5", *HELD_OUT}


def test_the_robustness_command_refuses_unknown_transformations(tmp_path, bank, caplog):
    det = save_model(Detector(DetectorConfig(channels=4)), tmp_path / "det")
    args = ["robustness", "--detector", str(det), "--bank", bank, "--transforms", "jpeg10", "--out", "x.json"]
    assert main(args) == 2
    assert "unknown transformation 'jpeg10'" in caplog.text
