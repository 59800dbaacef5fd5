"""scripts/train-generator-gpu.sh: where no GPU is, it says so and gives the CPU command, running nothing."""

import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train-generator-gpu.sh"


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")  # the script would train
def test_without_a_gpu_it_points_to_the_cpu_command(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and "python -m training rebuild gan --out" in result.stderr
    assert not (tmp_path / "out" / "rebuild").exists()
