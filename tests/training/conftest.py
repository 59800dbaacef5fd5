"""Fixtures of the detector tests (train-detector, ensemble-detector)."""

from __future__ import annotations

import pytest
import torch

from models import Generator, GeneratorConfig, save_model


@pytest.fixture
def generators(tmp_path):
    """Two tiny untrained generators: (conditional, unconditional) checkpoint directories."""
    torch.manual_seed(0)
    conditional = save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g", training={"epochs": 1})
    unconditional = save_model(Generator(GeneratorConfig(z_dim=8, num_classes=0, channels=4)), tmp_path / "g0")
    return conditional, unconditional
