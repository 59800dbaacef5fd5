"""scripts/compare_detectors.py: every detector judges the same images; JSON and a Markdown table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from models import Detector, DetectorConfig, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, save_model

ROOT = Path(__file__).resolve().parents[2]


def test_two_detectors_on_two_generators(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generators = [tmp_path / "g-cond", tmp_path / "g-uncond"]
    save_model(Generator(GeneratorConfig(channels=2)), generators[0])
    save_model(Generator(GeneratorConfig(channels=2, num_classes=0)), generators[1])
    # The same weights twice, with different temperatures: a temperature changes neither the ranking nor
    # the sign of a logit, so on the same images the two must get the same accuracy and ROC AUC.
    detector = Detector(DetectorConfig(channels=2))
    detectors = [tmp_path / "d1", tmp_path / "d2"]
    for i, path in enumerate(detectors):
        save_model(detector, path, metrics={"temperature": 1.0 + i})
    out = tmp_path / "report" / "detectors.json"
    command = [sys.executable, str(ROOT / "scripts" / "compare_detectors.py"), "--samples", "40", "--out", str(out)]
    command += [arg for d in detectors for arg in ("--detector", str(d))]
    command += [arg for g in generators for arg in ("--generator", str(g))]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=300)

    report = json.loads(out.read_text())
    assert report["samples"] == 40
    assert list(report["detectors"]) == [str(d) for d in detectors]
    assert [entry["temperature"] for entry in report["detectors"].values()] == [1.0, 2.0]
    for entry in report["detectors"].values():
        figures = entry["figures"]
        assert list(figures) == [str(g) for g in generators]
        assert set(figures[str(generators[0])]["clean"]) == {"labelled", "unlabelled"}
        assert set(figures[str(generators[1])]["jpeg75"]) == {"unlabelled"}  # no labels to give
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
    assert table.count("\n| `") == 4  # a row per generator and detector


def test_a_discriminator_is_judged_with_labels_on_conditional_generators_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generators = [tmp_path / "g-cond", tmp_path / "g-uncond"]
    save_model(Generator(GeneratorConfig(channels=2)), generators[0])
    save_model(Generator(GeneratorConfig(channels=2, num_classes=0)), generators[1])
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "det", metrics={"temperature": 1.0})
    save_model(Discriminator(DiscriminatorConfig(channels=2)), tmp_path / "disc")
    out = tmp_path / "both.json"
    command = [sys.executable, str(ROOT / "scripts" / "compare_detectors.py"), "--samples", "40", "--out", str(out)]
    command += ["--discriminator", str(tmp_path / "disc"), "--detector", str(tmp_path / "det")]
    command += [arg for g in generators for arg in ("--generator", str(g))]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=300)

    report = json.loads(out.read_text())
    detector, discriminator = report["detectors"][str(tmp_path / "det")], report["detectors"][str(tmp_path / "disc")]
    assert (detector["kind"], discriminator["kind"]) == ("Detector", "Discriminator")
    assert discriminator["temperature"] == 1.0  # a GAN discriminator has none
    assert list(discriminator["figures"]) == [str(generators[0])]  # no labels to give the unconditional one
    for version in ("clean", "jpeg75"):
        assert set(discriminator["figures"][str(generators[0])][version]) == {"labelled"}
    assert list(detector["figures"]) == [str(g) for g in generators]
    # A row per generator and judge that has figures for it: 2 for the detector, 1 for the discriminator.
    assert out.with_suffix(".md").read_text().count("\n| `") == 3


def test_compare_detectors_needs_a_model_to_judge(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "compare_detectors.py"), "--generator", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "give at least one --detector or --discriminator" in result.stderr
