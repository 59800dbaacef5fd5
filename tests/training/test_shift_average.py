"""scripts/shift_average.py: the verdict averaged over shifted copies, on compare_detectors' images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from models import Detector, DetectorConfig, Generator, GeneratorConfig, save_model

ROOT = Path(__file__).resolve().parents[2]


def test_the_unshifted_row_is_compare_detectors_jpeg_figure(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_model(Generator(GeneratorConfig(channels=2)), tmp_path / "g")
    save_model(Detector(DetectorConfig(channels=2)), tmp_path / "d", metrics={"temperature": 1.5})
    common = ["--detector", str(tmp_path / "d"), "--generator", str(tmp_path / "g"), "--samples", "40"]
    shifts, compare = tmp_path / "shift.json", tmp_path / "compare.json"
    for script, out in (("shift_average.py", shifts), ("compare_detectors.py", compare)):
        command = [sys.executable, str(ROOT / "scripts" / script), *common, "--out", str(out)]
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=300)

    rows = json.loads(shifts.read_text())["figures"]
    assert list(rows)[:3] == ["1 copy (as uploaded)", "5 copies (edges)", "9 copies (all)"]
    assert len(rows) == 3 + 8  # and each of the 8 shifts alone
    for modes in rows.values():
        assert set(modes) == {"labelled", "unlabelled"}
        for fig in modes.values():
            assert fig["n_real"] == fig["n_fake"] == 40
    # Same images, same JPEG round trip, same temperature: the unshifted row is compare_detectors' figure.
    reference = json.loads(compare.read_text())["detectors"][str(tmp_path / "d")]["figures"][str(tmp_path / "g")]
    for mode in ("labelled", "unlabelled"):
        mine, theirs = rows["1 copy (as uploaded)"][mode], reference["jpeg75"][mode]
        assert (mine["accuracy"], mine["roc_auc"], mine["ece"]) == (
            theirs["accuracy"],
            theirs["roc_auc"],
            theirs["ece"],
        )
    # A shifted copy is another image: its logits, and so its figures, differ from the unshifted ones somewhere.
    assert any(
        rows[name][mode]["ece"] != rows["1 copy (as uploaded)"][mode]["ece"]
        for name in rows
        if name.startswith("shifted")
        for mode in ("labelled", "unlabelled")
    )
