"""scripts/detector_gap.py: a detector's own split drawn again, error rates per set and version."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

from models import Detector, DetectorConfig, Generator, GeneratorConfig, load_model, save_model
from training.data import load_split

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "detector_gap.py"
FACTS = {"dataset": "fashion-mnist", "seed": 3, "train_images": 150, "val_images": 50}


def _script():
    spec = importlib.util.spec_from_file_location("detector_gap", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(im.numpy().tobytes()) for im in images}


def test_the_split_is_the_one_train_detector_made(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "d", training=FACTS)
    detector = load_model(tmp_path / "d", expected=Detector)
    script = _script()
    sets = script.draw_real_sets(*script.split_key(detector, "d"), samples=30, seed=0)
    # train-detector's split, written out: a permutation seeded with the run's seed, the first val_images held out.
    split = load_split("train", "fashion-mnist", None, limit=200)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(3))
    held_out, trained = _rows(split.images[perm[:50]]), _rows(split.images[perm[50:]])
    assert len(sets["train"][0]) == len(sets["validation"][0]) == len(sets["test"][0]) == 30
    assert _rows(sets["train"][0]) <= trained and not _rows(sets["train"][0]) & held_out
    assert _rows(sets["validation"][0]) <= held_out
    assert not _rows(sets["test"][0]) & _rows(split.images)  # test images are not training images


def test_report_of_two_detectors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_model(Generator(GeneratorConfig(channels=2)), tmp_path / "g")
    for name in ("d1", "d2"):
        save_model(Detector(DetectorConfig(channels=2)), tmp_path / name, training=FACTS)
    out = tmp_path / "gap.json"
    command = [sys.executable, str(SCRIPT), "--samples", "20", "--generator", str(tmp_path / "g"), "--out", str(out)]
    command += ["--detector", str(tmp_path / "d1"), "--detector", str(tmp_path / "d2")]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    assert list(report["detectors"]) == [str(tmp_path / "d1"), str(tmp_path / "d2")]
    for rates in report["detectors"].values():
        assert list(rates) == ["real train", "real validation", "real test", "fake"]
        for row in rates.values():
            assert list(row) == ["clean", "jpeg75", "mirrored", "mirrored+jpeg75"]
            assert all(round(r * 20, 6).is_integer() and 0 <= r <= 1 for r in row.values())  # shares of 20
    counts = report["test_reals_called_fake_after_jpeg"]
    wrong = list(counts["per_detector"].values())
    assert wrong[0] / 20 == report["detectors"][str(tmp_path / "d1")]["real test"]["jpeg75"]
    assert counts["by_every_detector"] <= min(wrong)


def test_a_detector_without_its_split_is_refused(tmp_path: Path) -> None:
    save_model(Generator(GeneratorConfig(channels=2)), tmp_path / "g")
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "d", training={"seed": 0})
    command = [sys.executable, str(SCRIPT), "--generator", str(tmp_path / "g"), "--detector", str(tmp_path / "d")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "training lacks train_images, val_images, dataset" in result.stderr
