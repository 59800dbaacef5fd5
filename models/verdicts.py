"""From a judging network to a verdict: ``{"label": "real" | "fake", "confidence": c}``.

One computation for every place that judges an image (the service's engine, the ``classify`` command, in
process or in bulk), so that a verdict is the same bytes wherever it is asked for:

- the network is frozen for inference (``freeze``): parametrizations such as spectral normalization baked in,
  which changes the last bits of a logit compared with recomputing W / sigma(W) on each call;
- the calibrated probability of "real" is sigmoid(logit / T) with the logit and the division in float32 (as the
  network gives it) and the sigmoid in float64 (``p_real``);
- the decision is taken on the unrounded probability, "real" only when it is above 0.5 (a logit of 0 says
  "fake", as training.metrics.detection decides), and the confidence is rounded to 4 digits afterwards
  (``decide``), so that 0.49996 stays "fake" with confidence 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from models.pixels import to_float

DIGITS = 4  # of a confidence


@dataclass(frozen=True)
class Decision:
    label: Literal["real", "fake"]
    confidence: float  # in [0.5, 1], rounded to DIGITS after the decision

    def as_dict(self) -> dict[str, str | float]:
        return {"label": self.label, "confidence": self.confidence}


def freeze(module: nn.Module) -> nn.Module:
    """Ready a loaded network for inference, in place: eval mode, no gradients, parametrizations baked in.

    Spectral normalization recomputes W / sigma(W) on every forward call; in eval mode its value is fixed, so
    computing it once gives the same value for less work per batch. (In place: on a deep copy it would corrupt
    the shared class.)
    """
    module.eval().requires_grad_(False)
    for sub in list(module.modules()):
        if parametrize.is_parametrized(sub):
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
    return module


def p_real(logits: torch.Tensor, temperature: float | None = None) -> list[float]:
    """Calibrated probabilities of "real" for a (B,) tensor of logits (positive = real)."""
    logits = logits.float()
    if temperature is not None:
        logits = logits / temperature
    return torch.sigmoid(logits.double()).cpu().tolist()


def judge(
    module: nn.Module,
    images: Sequence[torch.Tensor],
    labels: Sequence[int] | None,
    temperature: float | None,
    device: torch.device | str = "cpu",
) -> list[float]:
    """P(real) of each (28, 28) uint8 image in one forward pass; ``labels`` (one per image) or None."""
    x = to_float(torch.stack(list(images))).unsqueeze(1).to(device, non_blocking=True)  # (B, 1, 28, 28)
    y = None if labels is None else torch.tensor(list(labels), dtype=torch.long).to(device)
    with torch.inference_mode():
        logits = module(x, y)  # (B,)
    return p_real(logits, temperature)


def decide(probability: float) -> Decision:
    """The verdict on a probability of "real": decided unrounded, then the confidence rounded."""
    if probability > 0.5:
        return Decision("real", round(probability, DIGITS))
    return Decision("fake", round(1.0 - probability, DIGITS))
