"""scripts/jpeg_quality.py: a detector's figures by JPEG quality, on compare_detectors' images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from models import Detector, DetectorConfig, Generator, GeneratorConfig, save_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "jpeg_quality.py"


def test_the_clean_and_75_rows_are_compare_detectors_figures(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_model(Generator(GeneratorConfig(channels=2)), tmp_path / "g")
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "d", metrics={"temperature": 1.5})
    common = ["--detector", str(tmp_path / "d"), "--generator", str(tmp_path / "g"), "--samples", "40"]
    curve, compare = tmp_path / "curve.json", tmp_path / "compare.json"
    qualities = ["--quality", "90", "--quality", "75", "--quality", "30"]
    for command in (
        [sys.executable, str(SCRIPT), *common, *qualities, "--out", str(curve)],
        [sys.executable, str(ROOT / "scripts" / "compare_detectors.py"), *common, "--out", str(compare)],
    ):
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=300)

    rows = json.loads(curve.read_text())["figures"][str(tmp_path / "d")]
    assert list(rows) == ["clean", "90", "75", "30"]
    for modes in rows.values():
        assert set(modes) == {"labelled", "unlabelled"}
        assert all(fig["n_real"] == fig["n_fake"] == 40 for fig in modes.values())
    reference = json.loads(compare.read_text())["detectors"][str(tmp_path / "d")]["figures"][str(tmp_path / "g")]
    for mine, theirs in ((rows["clean"], reference["clean"]), (rows["75"], reference["jpeg75"])):
        for mode in ("labelled", "unlabelled"):
            keys = ("accuracy", "roc_auc", "ece")
            assert [mine[mode][k] for k in keys] == [theirs[mode][k] for k in keys]
    # Another quality is another image: the figures differ from quality 75's somewhere.
    assert any(rows["30"][m]["ece"] != rows["75"][m]["ece"] for m in ("labelled", "unlabelled"))
    table = curve.with_suffix(".md").read_text()
    assert "| 75 |" in table and "| clean |" in table


def test_a_quality_out_of_range_is_refused_with_a_message(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--detector", "d", "--generator", "g", "--quality", "101"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "a JPEG quality is 1..100, not 101" in result.stderr
