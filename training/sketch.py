"""Sketches of garments: edge operators on batched image tensors, and the augmentations of training.

Pixels are -1..1 in and out, as everywhere in the project (``models.pixels``): images are (B, 1, 28, 28)
tensors on any device, and a sketch is light strokes (+1) on a dark background (-1), like the garments
themselves. Everything is a handful of convolutions and pooling on the whole batch, so it runs on the
GPU as well as the CPU, and every random choice is drawn from the ``torch.Generator`` it is given (on the
images' device): the same generator state gives the same sketches.

The training operator, ``sobel`` (thresholded Sobel magnitude):

1. intensities v = (x + 1) / 2, in 0..1;
2. Sobel gradients gx, gy (the 3x3 kernels [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] and its transpose; the image
   is padded by repeating its border, so the border itself is no edge), magnitude m = sqrt(gx² + gy²) / 4:
   a step from black to white gives m = 1 on the two pixels either side of it;
3. a stroke wherever m > 0.25 (a step of a quarter of the grey range): the garment's outline and its
   strong inner edges (collars, seams, zips, the gap between trouser legs), about two pixels wide.

The augmentations (``augmented_sketch``; ``Augment`` holds their ranges) make the training sketches as
varied as hand-drawn ones and those of other edge operators. Per image:

- threshold: uniform in [0.15, 0.45] instead of 0.25: more or fewer inner lines (folds, prints, texture);
- stroke width: thin (only pixels whose magnitude is at least 0.9 of the largest in their 3x3
  neighbourhood: about one pixel; 30% of the images), as is (45%), one pixel wider (2x2 maximum filter;
  20%) or two (3x3; 5%);
- breaks: each 2x2 cell loses its strokes with a probability drawn uniformly in [0, 0.12];
- jitter: the strokes are displaced by a smooth random field (4x4 control points, bilinear, up to
  0.75 px), so lines wobble as a hand's do;
- soft strokes: the displaced stroke map is resampled bilinearly, which leaves grey, anti-aliased stroke
  edges, as a drawing downscaled to 28x28 has; half the images are thresholded back to +1/-1 at half way.

Operators that training never uses, for evaluation only (``HELD_OUT``):

- ``canny`` (Canny-like): Gaussian blur (sigma 0.8 px), Sobel gradients, non-maximum suppression along
  the gradient direction (rounded to one of 4), hysteresis between thresholds 0.10 and 0.25: one-pixel
  lines, thinner and more continuous than the training operator's;
- ``contour``: the silhouette's outline only: the pixels brighter than 5% grey, less their 3x3 erosion
  (the morphological inner gradient): a one-pixel outline with no inner detail, the closest of the three
  to a quick hand-drawn outline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGE_SIZE = 28
SOBEL_THRESHOLD = 0.25
TRAIN_OPERATOR = "sobel"
HELD_OUT = ("canny", "contour")

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Augment:
    """The ranges of the training augmentations (see the module docstring)."""

    threshold: tuple[float, float] = (0.15, 0.45)  # Sobel magnitude threshold, uniform in this range
    width_p: tuple[float, float, float, float] = (0.3, 0.45, 0.2, 0.05)  # thin, as is, +1 px, +2 px
    thin_ratio: float = 0.9  # "thin" keeps pixels at least this fraction of their 3x3 neighbourhood's maximum
    break_p: float = 0.12  # largest per-image probability that a 2x2 cell loses its strokes
    jitter_px: float = 0.75  # largest displacement of the smooth jitter field, in pixels
    binary_p: float = 0.5  # probability that the jittered strokes are thresholded back to +1/-1


AUGMENT = Augment()


def _intensity(images: torch.Tensor) -> torch.Tensor:
    """-1..1 (B, 1, 28, 28) -> float32 intensities in 0..1."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, 1, H, W), got {tuple(images.shape)}")
    return (images.float() + 1.0) / 2.0


def to_strokes(mask: torch.Tensor) -> torch.Tensor:
    """A stroke map (bool, or 0..1 float) -> a sketch in -1..1: strokes +1, background -1."""
    return mask.float() * 2.0 - 1.0


def _gradients(v: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 2, H, W): Sobel gx and gy, the border repeated outward."""
    kernel = torch.stack([_SOBEL_X, _SOBEL_X.T]).unsqueeze(1).to(v.device)  # (2, 1, 3, 3)
    return F.conv2d(F.pad(v, (1, 1, 1, 1), mode="replicate"), kernel)


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """-1..1 (B, 1, H, W) -> (B, 1, H, W) Sobel magnitude / 4: a black-to-white step gives 1 either side of it."""
    return _gradients(_intensity(images)).pow(2).sum(1, keepdim=True).sqrt() / 4.0


def sobel(images: torch.Tensor, threshold: float = SOBEL_THRESHOLD) -> torch.Tensor:
    """The training operator, without augmentation: strokes where the Sobel magnitude exceeds ``threshold``."""
    return to_strokes(sobel_magnitude(images) > threshold)


def _max_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """A size x size maximum filter that keeps the shape (size 2 grows toward the bottom right)."""
    if size == 2:
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    return F.max_pool2d(x, size, stride=1, padding=size // 2)


def _gaussian_blur(v: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=v.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()  # (2r + 1,)
    v = F.pad(v, (radius, radius, radius, radius), mode="replicate")
    v = F.conv2d(v, k.view(1, 1, 1, -1))  # rows
    return F.conv2d(v, k.view(1, 1, -1, 1))  # columns


# Neighbour offsets (row, column) along the gradient for each rounded direction: 0°, 45°, 90°, 135°.
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[..., i, j] = x[..., i + dy, j + dx], zero outside the image."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def canny(images: torch.Tensor, low: float = 0.10, high: float = 0.25, sigma: float = 0.8) -> torch.Tensor:
    """A held-out operator: Canny-like one-pixel edges (blur, Sobel, non-maximum suppression, hysteresis)."""
    g = _gradients(_gaussian_blur(_intensity(images), sigma))  # (B, 2, H, W)
    gx, gy = g[:, :1], g[:, 1:]
    mag = torch.sqrt(gx**2 + gy**2) / 4.0  # (B, 1, H, W)
    # Round the gradient direction to one of 4 and keep the pixels not smaller than both neighbours along it
    # (strictly larger than one of them, so that a symmetric step keeps one pixel, not two).
    sector = torch.remainder(torch.round(torch.atan2(gy, gx) / (math.pi / 4)), 4).long()
    keep = torch.zeros_like(mag, dtype=torch.bool)
    for k, (dy, dx) in enumerate(_DIRECTIONS):
        local = (mag > _shifted(mag, dy, dx)) & (mag >= _shifted(mag, -dy, -dx))
        keep |= (sector == k) & local
    thin = mag * keep
    # Hysteresis: weak edges survive where they connect to a strong one.
    weak = thin > low
    edges = thin > high
    for _ in range(IMAGE_SIZE):
        grown = weak & (_max_filter(edges.float(), 3) > 0)
        if torch.equal(grown, edges):
            break
        edges = grown
    return to_strokes(edges)


def contour(images: torch.Tensor, level: float = 0.05) -> torch.Tensor:
    """A held-out operator: the outline of the silhouette (pixels above ``level``), one pixel wide."""
    silhouette = (_intensity(images) > level).float()
    padded = F.pad(silhouette, (1, 1, 1, 1), mode="replicate")
    eroded = -F.max_pool2d(-padded, 3, stride=1)  # (B, 1, H, W): a 3x3 minimum filter
    return to_strokes((silhouette > 0) & (eroded == 0))


OPERATORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"sobel": sobel, "canny": canny, "contour": contour}


def sketch(images: torch.Tensor, operator: str = TRAIN_OPERATOR) -> torch.Tensor:
    """-1..1 images (B, 1, 28, 28) -> their sketches by the named operator, without augmentation."""
    try:
        fn = OPERATORS[operator]
    except KeyError:
        raise ValueError(f"unknown sketch operator {operator!r}; expected one of {', '.join(OPERATORS)}") from None
    return fn(images)


def augmented_sketch(images: torch.Tensor, generator: torch.Generator, aug: Augment = AUGMENT) -> torch.Tensor:
    """The training operator with the augmentations, drawn per image from ``generator`` (on the images' device)."""
    mag = sobel_magnitude(images)  # (B, 1, H, W)
    B, _, H, W = mag.shape
    dev = mag.device
    u = torch.rand(B, 5, generator=generator, device=dev)  # the per-image draws
    view = (B, 1, 1, 1)

    # Threshold.
    lo, hi = aug.threshold
    mask = mag > (lo + (hi - lo) * u[:, 0]).view(view)

    # Stroke width: 0 thin, 1 as is, 2 and 3 one and two pixels wider.
    cumulative = torch.tensor(aug.width_p, device=dev).cumsum(0)
    width = torch.searchsorted(cumulative / cumulative[-1], u[:, 1].contiguous()).clamp_(max=3).view(view)
    thin = mag >= aug.thin_ratio * _max_filter(mag, 3)
    wide = mask.float()
    mask = torch.where(width == 0, mask & thin, mask)
    mask = torch.where(width == 2, _max_filter(wide, 2) > 0, mask)
    mask = torch.where(width == 3, _max_filter(wide, 3) > 0, mask)

    # Breaks: erase 2x2 cells.
    cells = torch.rand(B, 1, H // 2, W // 2, generator=generator, device=dev) < (aug.break_p * u[:, 2]).view(view)
    mask = mask & ~F.interpolate(cells.float(), scale_factor=2, mode="nearest").bool()

    # Jitter: displace the strokes by a smooth random field, resampling bilinearly (soft edges).
    control = torch.rand(B, 2, 4, 4, generator=generator, device=dev) * 2 - 1  # (B, 2, 4, 4) in -1..1
    field = F.interpolate(control, size=(H, W), mode="bilinear", align_corners=True)  # (B, 2, H, W)
    field = field * (aug.jitter_px * u[:, 3]).view(view) * (2.0 / W)  # pixels -> grid units
    identity = F.affine_grid(torch.eye(2, 3, device=dev).expand(B, 2, 3), [B, 1, H, W], align_corners=False)
    grid = identity + field.permute(0, 2, 3, 1)  # (B, H, W, 2): x, y
    soft = F.grid_sample(mask.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Threshold back to +1/-1, or keep the soft edges.
    binary = (u[:, 4] < aug.binary_p).view(view)
    return to_strokes(torch.where(binary, (soft >= 0.5).float(), soft))
