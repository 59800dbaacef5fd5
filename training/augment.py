"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

D sees every image, real and fake alike, through the same random transformations, in its own step and
in G's step, and the gradient flows through them to G. D then cannot win by memorizing the exact pixels
of the training images, which is what makes it overfit and G collapse onto the few modes that still
fool it; the transformations are ones G cannot simply learn to reproduce, since D never sees an
unaugmented image.

Policies, named in a comma-separated string (``"translation,cutout"``):
- ``translation``: each image shifted by up to 1/8 of its size (3 pixels at 28x28) in x and y, the
  uncovered border filled with the background (-1, black in the project's -1..1 pixel range).
- ``cutout``: one square of half the image's size, at a random place, set to the background.
- ``color``: brightness (add U(-0.5, 0.5)) and contrast (scale around the image's mean by U(0.5, 1.5)),
  the two colour operations that mean anything for grayscale images.

Every random draw comes from the ``torch.Generator`` given, so a run is reproducible and resumes exactly.
"""

from __future__ import annotations

import torch

POLICIES = ("translation", "cutout", "color")
BACKGROUND = -1.0


def parse_policy(text: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ("translation", "cutout"); "" -> (); unknown names raise ValueError."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; expected any of {', '.join(POLICIES)}")
    return names


def _uniform(n: int, low: float, high: float, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen, device=x.device, dtype=x.dtype) * (high - low) + low


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + _uniform(n, -0.5, 0.5, x, gen)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(n, 0.5, 1.5, x, gen) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen, device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen, device=x.device)
    # Output pixel (i, j) reads input pixel (i - dy, j - dx) of the padded image: a shift by (dy, dx).
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy + sy  # (n, h, 1) into the padded image
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx + sx  # (n, 1, w)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy), value=BACKGROUND)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # The square's top-left corner, so that it may hang over any edge by up to half its size.
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen, device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen, device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (n, h, w)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, BACKGROUND), x)


_APPLY = {"translation": translation, "cutout": cutout, "color": color}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Apply the policy's transformations in order (colour first, as in DiffAugment); () returns x."""
    for name in ("color", "translation", "cutout"):
        if name in policy:
            x = _APPLY[name](x, gen)
    return x
