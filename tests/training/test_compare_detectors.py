"""`compare-detectors`: every model judges the same images; JSON report and Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models import (
    Detector,
    DetectorConfig,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    load_model,
    save_model,
)
from training.cli import main
from training.detector import draw_test_reals, evaluate_detector
from training.evaluation import stream_seed
from training.fakes import draw_fakes


@pytest.fixture
def two_generators(tmp_path: Path) -> list[Path]:
    """A conditional and an unconditional tiny generator."""
    torch.manual_seed(0)
    paths = [tmp_path / "g-cond", tmp_path / "g-uncond"]
    save_model(Generator(GeneratorConfig(z_dim=8, channels=2)), paths[0])
    save_model(Generator(GeneratorConfig(z_dim=8, channels=2, num_classes=0)), paths[1])
    return paths


def compare(*words: str | Path) -> int:
    return main(["compare-detectors", *map(str, words)])


def test_two_detectors_on_two_generators(tiny_data, tmp_path, two_generators) -> None:
    # The same weights twice, with different temperatures: a temperature changes neither the ranking nor the sign
    # of a logit, so on the same images the two must get the same accuracy and ROC AUC.
    detector = Detector(DetectorConfig(channels=2))
    detectors = [tmp_path / "d1", tmp_path / "d2"]
    for i, path in enumerate(detectors):
        save_model(detector, path, metrics={"temperature": 1.0 + i})
    out = tmp_path / "report" / "detectors.json"
    words = ["--samples", "40", "--out", out]
    words += [w for d in detectors for w in ("--detector", d)]
    words += [w for g in two_generators for w in ("--generator", g)]
    assert compare(*words) == 0

    report = json.loads(out.read_text())
    assert report["samples"] == 40 and report["jpeg_qualities"] == [75]
    assert report["command"].startswith("python -m training compare-detectors --detector ")
    assert list(report["detectors"]) == [str(d) for d in detectors]
    assert [entry["temperature"] for entry in report["detectors"].values()] == [1.0, 2.0]
    cond, uncond = (str(g) for g in two_generators)
    for entry in report["detectors"].values():
        figures = entry["figures"]
        assert list(figures) == [cond, uncond]
        assert list(figures[cond]) == ["clean", "jpeg75"]
        assert set(figures[cond]["clean"]) == {"labelled", "unlabelled"}
        assert set(figures[uncond]["jpeg75"]) == {"unlabelled"}  # no labels to give
        for versions in figures.values():
            for modes in versions.values():
                for fig in modes.values():
                    assert fig["n_real"] == fig["n_fake"] == 40
                    assert 0.0 <= fig["accuracy"] <= 1.0
    first, second = (e["figures"] for e in report["detectors"].values())
    for generator, versions in first.items():
        for version, modes in versions.items():
            for mode, fig in modes.items():
                other = second[generator][version][mode]
                assert (fig["accuracy"], fig["roc_auc"]) == (other["accuracy"], other["roc_auc"])
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| `") == 2 * 2 * 2  # a row per generator, detector and image version


def test_the_figures_are_train_detectors_test_figures_on_the_same_images(tiny_data, tmp_path, two_generators):
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "d", metrics={"temperature": 1.5})
    out = tmp_path / "q.json"
    words = ["--detector", tmp_path / "d", "--samples", "40", "--out", out]
    words += [w for g in two_generators for w in ("--generator", g)]
    words += ["--jpeg-quality", "90", "--jpeg-quality", "75", "--jpeg-quality", "30"]
    assert compare(*words) == 0
    figures = json.loads(out.read_text())["detectors"][str(tmp_path / "d")]["figures"]

    # The same draw, judged by the function that gives train-detector its test figures.
    device = torch.device("cpu")
    real = draw_test_reals(40, 0, "compare-real")
    fakes = {
        str(g): draw_fakes(load_model(g, expected=Generator), real.labels, stream_seed(0, f"compare:{g}"), device)
        for g in two_generators
    }
    detector = load_model(tmp_path / "d")
    reference = evaluate_detector(detector, real.images, real.labels, fakes, temperature=1.5, device=device)
    for generator, versions in reference.items():
        assert list(figures[generator]) == ["clean", "jpeg90", "jpeg75", "jpeg30"]
        for version in ("clean", "jpeg75"):
            assert figures[generator][version] == versions[version]
        # Another quality is another image: the figures differ from quality 75's somewhere.
        assert figures[generator]["jpeg30"] != figures[generator]["jpeg75"]


def test_a_discriminator_is_judged_with_labels_on_conditional_generators_only(tiny_data, tmp_path, two_generators):
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "det", metrics={"temperature": 1.0})
    save_model(Discriminator(DiscriminatorConfig(channels=2)), tmp_path / "disc")
    out = tmp_path / "both.json"
    words = ["--samples", "40", "--out", out, "--discriminator", tmp_path / "disc", "--detector", tmp_path / "det"]
    words += [w for g in two_generators for w in ("--generator", g)]
    assert compare(*words) == 0

    report = json.loads(out.read_text())
    detector, discriminator = report["detectors"][str(tmp_path / "det")], report["detectors"][str(tmp_path / "disc")]
    assert (detector["kind"], discriminator["kind"]) == ("Detector", "Discriminator")
    assert discriminator["temperature"] == 1.0  # a GAN discriminator has none
    assert list(discriminator["figures"]) == [str(two_generators[0])]  # no labels to give the unconditional one
    for version in ("clean", "jpeg75"):
        assert set(discriminator["figures"][str(two_generators[0])][version]) == {"labelled"}
    assert list(detector["figures"]) == [str(g) for g in two_generators]
    # A row per generator, judge that has figures for it, and version: 2 x 2 for the detector, 2 for the other.
    assert out.with_suffix(".md").read_text().count("\n| `") == 6


def test_without_a_model_to_judge_it_says_so(tmp_path, caplog) -> None:
    assert compare("--generator", tmp_path) == 2
    assert "give at least one --detector or --discriminator" in caplog.text


def test_a_quality_out_of_range_is_refused_with_a_message(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare("--detector", "d", "--generator", "g", "--jpeg-quality", "101")
    assert exit_info.value.code == 2
    assert "a JPEG quality is 1..100, not 101" in capsys.readouterr().err


def test_a_missing_checkpoint_is_one_error_line(tiny_data, tmp_path, two_generators, caplog) -> None:
    assert compare("--detector", tmp_path / "nowhere", "--generator", two_generators[0], "--samples", "10") == 2
    assert str(tmp_path / "nowhere") in caplog.text
