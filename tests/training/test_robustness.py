"""Fake sources (banks) and the robustness report, on tiny detectors and tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from models import Detector, DetectorConfig, save_model
from training.cli import main
from training.fakes import BankError, BankSource, FakeMix
from training.robustness import Judge, headline, markdown, robustness_report, tradeoff
from training.transforms import HELD_OUT, SUITE
from training.zoo.common import load_bank


def write_bank(path, images: np.ndarray, labels: np.ndarray, family: str = "toy", **meta) -> str:
    np.savez_compressed(
        path,
        images=images,
        labels=labels.astype(np.int64),
        meta=np.array(json.dumps({"family": family, "count": len(images), **meta})),
    )
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
    images, _, meta = load_bank(bank)
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


def test_a_bank_describes_the_zoo_model_and_the_draw_it_came_from(tmp_path):
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    path = write_bank(
        tmp_path / "b.npz", images, np.arange(10), model_seed=1, model_steps=3000, seed=1011, split="test"
    )
    assert BankSource(path).describe() == {
        "path": path, "family": "toy", "conditional": True, "images": 10,
        "model_seed": 1, "model_steps": 3000, "bank_seed": 1011, "bank_split": "test",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 28, 28), np.float32), np.zeros(4), "images must be uint8"),
        (np.zeros((4, 14, 14), np.uint8), np.zeros(4), "images must be uint8 of shape"),
        (np.zeros((4, 28, 28), np.uint8), np.full(4, 10), "labels must be class ids"),
    ],
)
def test_a_malformed_bank_is_refused_naming_the_file(tmp_path, images, labels, message):
    path = write_bank(tmp_path / "bad.npz", images, labels)
    with pytest.raises(BankError, match=message) as info:
        load_bank(path)
    assert "bad.npz" in str(info.value)
    (tmp_path / "text.npz").write_text("not a bank")
    with pytest.raises(BankError, match=r"text\.npz: not a readable npz bank"):
        load_bank(tmp_path / "text.npz")


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
    report = robustness_report([judge], (reals, real_labels), fakes, transforms, seed=0, device=torch.device("cpu"))
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


def test_a_held_out_family_never_reaches_training():
    from training.holdout import family_splits

    families = {"g1": "gan", "g2": "gan", "a.npz": "vae", "b.npz": "ddpm", "c.npz": "vae"}
    splits = family_splits(families)
    assert set(splits) == {"gan", "vae", "ddpm"}
    for held_out, trained_on in splits.items():
        assert trained_on and all(families[s] != held_out for s in trained_on)
        assert set(trained_on) | {s for s, f in families.items() if f == held_out} == set(families)


def test_holdout_families_trains_one_detector_per_family_and_judges_it_on_that_family(
    tmp_path, bank, generators, tiny_data
):
    other = write_bank(tmp_path / "other.npz", np.full((40, 28, 28), 90, np.uint8), np.arange(40) % 10, "other")
    out = tmp_path / "lofo"
    args = ["holdout-families", "--out", str(out), "--generator", str(generators[0]), "--bank", bank]
    args += ["--bank", other, "--test", f"toy={bank}", "--test", f"other={other}", "--test", f"gan={generators[0]}"]
    args += ["--steps", "2", "--batch-size", "8", "--val-size", "20", "--test-samples", "20", "--eval-every", "2"]
    args += ["--channels", "4", "--no-progress", "--transforms", "clean", "jpeg75"]
    assert main(args) == 0
    results = json.loads((out / "holdout.json").read_text())
    assert set(results) == {"gan", "toy", "other"}
    for family, r in results.items():
        trained = json.loads((out / f"without-{family}" / "options.json").read_text())["generators"]
        assert trained == r["trained_on"] and r["test"] not in trained and len(trained) == 2
        assert set(r["figures"]) == {"clean", "jpeg75"}
        assert 0.0 <= r["figures"]["clean"]["tpr_at_1fpr"] <= 1.0
    assert (out / "holdout.md").read_text().startswith("| held-out family | clean acc / TPR@1% |")
    with pytest.raises(SystemExit):
        main([*args[:-4], "--transforms", "nonsense"])


def test_a_detector_run_measures_banks_on_test_banks_never_on_the_images_it_trained_on(
    tmp_path, bank, generators, tiny_data
):
    test_bank = write_bank(tmp_path / "test.npz", np.full((40, 28, 28), 30, np.uint8), np.arange(40) % 10)
    run = tmp_path / "run"
    args = ["train-detector", "--out", str(run), "--generator", str(generators[0]), "--bank", bank]
    args += ["--holdout-generator", test_bank, "--steps", "2", "--batch-size", "8", "--val-size", "20"]
    args += ["--test-samples", "20", "--eval-every", "2", "--channels", "4", "--no-progress"]
    assert main(args) == 0
    test = json.loads((run / "detector" / "config.json").read_text())["metrics"]["test"]
    assert set(test) == {f"seen:{generators[0]}", f"unseen:{test_bank}"}


def _row(real: float, fakes: dict[str, float], ece: float = 0.01) -> dict:
    sources = {s: {"accuracy_real": real, "accuracy_fake": f, "accuracy": (real + f) / 2, "roc_auc": 0.99,
                   "tpr_at_1fpr": 0.9, "ece": ece} for s, f in fakes.items()}  # fmt: skip
    return {"accuracy_real": real, "sources": sources}


def test_the_tradeoff_row_sums_a_judge_up_over_clean_ordinary_held_out_and_heavy_transformations():
    kinds = {"clean": (False, False), "jpeg75": (False, False), "blur0.5": (False, False),
             "gamma0.8": (False, True), "jpeg30": (True, False)}  # fmt: skip
    report = {
        "transforms": {t: {"heavy": h, "held_out": o} for t, (h, o) in kinds.items()},
        "figures": {
            "a": {
                "clean": _row(0.995, {"gan": 0.99, "vae": 0.98}, ece=0.02),
                "jpeg75": _row(0.98, {"gan": 0.96, "vae": 0.97}),
                "blur0.5": _row(0.90, {"gan": 0.99, "vae": 0.94}),
                "gamma0.8": _row(0.96, {"gan": 0.90, "vae": 0.80}),
                "jpeg30": _row(0.60, {"gan": 0.70, "vae": 0.70}, ece=0.30),
            },
            "b": {"clean": _row(1.0, {"gan": 1.0, "vae": 1.0}), "sharpen": _row(0.97, {"gan": 0.95, "vae": 0.95})},
        },
    }
    report["transforms"]["sharpen"] = {"heavy": False, "held_out": False}
    rows = tradeoff(report)
    a, b = rows["a"], rows["b"]
    assert (a["clean_real"], a["clean_fake_min"], a["clean_ece_max"]) == (0.995, 0.98, 0.02)
    assert a["ordinary_real_min"] == {"value": 0.90, "transform": "blur0.5"}
    assert a["ordinary_fake_min"] == {"value": 0.94, "transform": "blur0.5", "source": "vae"}
    assert (a["ordinary_met"], a["ordinary_n"]) == (1, 2)  # jpeg75 meets both targets; blur0.5 neither
    assert a["held_out_accuracy"] == pytest.approx(((0.96 + 0.90) / 2 + (0.96 + 0.80) / 2) / 2)
    assert a["heavy_ece_max"] == 0.30
    assert (b["ordinary_met"], b["ordinary_n"]) == (1, 1)  # exactly at both targets counts as met
    assert b["held_out_accuracy"] is None and b["heavy_ece_max"] is None  # not measured: not invented
    report.update(sources=["gan", "vae"], n_real=10, n_fake={"gan": 10, "vae": 10},
                  judges={j: {"labelled": True, "temperature": 1.0} for j in ("a", "b")})  # fmt: skip
    table = markdown(report)
    assert table.startswith("### Side by side")
    assert "| a | 99.5 | 98.0 | 90.0 (blur0.5) | 94.0 (blur0.5, vae) | 1 of 2 | 90.5 | 0.300 | 0.020 |" in table
    assert "| b | 100.0 | 100.0 | 97.0 (sharpen) | 95.0 (sharpen, gan) | 1 of 1 | — | — | 0.010 |" in table
