"""GradCAM: which parts of an image pushed a classifier toward "fake" (no HTTP here).

What is computed. GradCAM (Selvaraju et al., 2017) weighs each channel of one
convolutional layer's output by the mean gradient of a score with respect to
it, sums the channels and keeps the positive part: a map, at that layer's
resolution, of the places whose features raise the score. captum's
``LayerGradCam`` does exactly this; it is used here rather than hand-written hooks.

The sign. The networks answer a logit where positive means "real". The score
explained is the *negated* (calibrated) logit, so the map shows evidence for
"fake": a hot region is one whose features pushed the verdict toward fake, and
an image the model finds entirely real gives an empty map. Dividing by the
detector's temperature changes the map's scale only (the ``peak``), not its shape.

The layer, chosen per architecture (``LAYERS``): the output of the last block at
14x14, after its activation.
- 7x7 (the last layer, GradCAM's usual choice) is too coarse on a 28x28 image: a
  cell is 4x4 pixels, so a sleeve and the background beside it share a cell.
- 28x28 is too shallow: after one or two 3x3 convolutions a unit sees a few
  pixels and responds to local contrast, not to anything the verdict rests on.
- 14x14, after three convolutions (Discriminator: ``features.5``, receptive field
  10x10 pixels) or four (Detector: ``features.3``, 14x14 pixels, and it already
  sees the high-pass residual), is deep enough to carry the features the head
  pools, and fine enough (2x2-pixel cells) to point at a part of a garment.

The service runs it off the event loop on private copies of the networks
(service/explain.py); the `explain` command draws a figure with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.pixels import to_float

# The layer GradCAM reads, by network class name (module path as in ``named_modules``). Why: module docstring.
LAYERS: dict[str, str] = {
    "Discriminator": "features.5",  # LeakyReLU after the second 14x14 convolution: (B, 2C, 14, 14)
    "Detector": "features.3",  # the second 14x14 block (conv, batch norm, LeakyReLU): (B, 2C, 14, 14)
}
# Networks made of several of the above (ModuleList ``members``): each member's layer is read, and the map is the
# sum of their GradCAM terms before the ReLU. The ensemble's logit is the mean of its members', so each member's
# gradient carries its 1/K share, and the sum is the evidence of the verdict the ensemble gives.
ENSEMBLES: frozenset[str] = frozenset({"DetectorEnsemble"})
DEFAULT_SCALE = 8  # 28x28 -> 224x224 overlays
OVERLAY_ALPHA = 0.7  # opacity of the colour at the hottest point (it falls to 0 where the map is 0)
COLORMAP = "turbo"  # blue -> green -> red: hues that stand out on a grayscale garment (a luminance ramp would not)


class NoLayer(ValueError):
    """The network has no layer chosen for GradCAM (a class not in LAYERS)."""


def layers_of(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, layer) pairs that GradCAM reads in this network (one per member of an ensemble); NoLayer for
    an unknown architecture."""
    kind = type(module).__name__
    if kind in ENSEMBLES:
        members = getattr(module, "members", None)
        if isinstance(members, nn.ModuleList) and all(type(m).__name__ in LAYERS for m in members):
            return [
                (f"members.{i}.{LAYERS[type(m).__name__]}", m.get_submodule(LAYERS[type(m).__name__]))
                for i, m in enumerate(members)
            ]
    name = LAYERS.get(kind)
    if name is None:
        explainable = ", ".join(sorted({*LAYERS, *ENSEMBLES}))
        raise NoLayer(f"no GradCAM layer is defined for a {kind}; explainable: {explainable}")
    return [(name, module.get_submodule(name))]


@dataclass(frozen=True)
class Explanation:
    """GradCAM of one image."""

    heat: np.ndarray  # (h, w) float32 >= 0 at the layer's resolution: evidence toward "fake" (calibrated logit units)
    logit: float  # the calibrated logit (positive = real)
    layer: str  # which layer, e.g. "features.5" (an ensemble's, joined by "+")

    @property
    def peak(self) -> float:
        """The map's largest value; 0 when nothing in the image pushed the verdict toward fake."""
        return float(self.heat.max()) if self.heat.size else 0.0

    @property
    def normalized(self) -> np.ndarray:
        """The map divided by its peak (0..1); all zeros when the peak is 0."""
        peak = self.peak
        return self.heat / peak if peak > 0 else np.zeros_like(self.heat)


def gradcam(
    module: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    temperature: float | None = None,
) -> list[Explanation]:
    """GradCAM toward "fake" for (B, 28, 28) uint8 images (labels: (B,) int64 or None).

    ``module`` is called as ``module(x in -1..1 (B, 1, 28, 28), labels) -> (B,) logits``. Its hooks are
    registered and removed here, so it must not be running in another thread meanwhile.
    """
    from captum.attr import LayerGradCam  # imported on first use: it costs a second of startup otherwise

    layers = layers_of(module)
    scale = 1.0 / (temperature or 1.0)
    device = next(module.parameters()).device
    x = to_float(images).unsqueeze(1).to(device)  # (B, 1, 28, 28)
    y = None if labels is None else labels.to(device)

    def toward_fake(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return -module(x, y).float() * scale  # (B,): the negated calibrated logit

    with torch.enable_grad():  # the batchers' inference mode is per thread, but say it
        # One GradCAM term per layer read, summed before the ReLU (an ensemble's members: see ENSEMBLES).
        cam = sum(
            LayerGradCam(toward_fake, layer).attribute(x, additional_forward_args=(y,), relu_attributions=False)
            for _, layer in layers
        )
        with torch.no_grad():
            logits = -toward_fake(x, y)
    heat = torch.relu(cam.detach())[:, 0].float().cpu().numpy()  # (B, h, w)
    name = "+".join(n for n, _ in layers)
    return [
        Explanation(heat=h, logit=float(logit), layer=name)
        for h, logit in zip(heat, logits.cpu().tolist(), strict=True)
    ]


@cache
def _colormap() -> np.ndarray:
    """(256, 3) float32 RGB lookup table of COLORMAP."""
    import matplotlib  # imported on first use, without pyplot

    return matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3].astype(np.float32)


def overlay(pixels: np.ndarray, heat: np.ndarray, scale: int = DEFAULT_SCALE) -> np.ndarray:
    """The image with its map laid over it: (28, 28) uint8 and (h, w) in 0..1 -> (28s, 28s, 3) uint8.

    The image is enlarged nearest-neighbour (its pixels stay sharp squares); the map bilinearly
    (its cells are a coarse grid, not pixels). The colour's opacity follows the map, so where the
    map is 0 the image shows unchanged.
    """
    size = pixels.shape[0] * scale, pixels.shape[1] * scale
    gray = np.repeat(np.repeat(pixels.astype(np.float32) / 255.0, scale, axis=0), scale, axis=1)  # (28s, 28s)
    big = F.interpolate(torch.from_numpy(heat)[None, None].float(), size=size, mode="bilinear", align_corners=False)
    h = big[0, 0].clamp(0.0, 1.0).numpy()  # (28s, 28s)
    colour = _colormap()[np.rint(h * 255).astype(np.intp)]  # (28s, 28s, 3)
    alpha = (OVERLAY_ALPHA * h)[..., None]
    out = (1.0 - alpha) * gray[..., None] + alpha * colour
    return np.rint(out * 255.0).clip(0, 255).astype(np.uint8)
