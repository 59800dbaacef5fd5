"""Structural similarity (SSIM; Wang, Bovik, Sheikh & Simoncelli 2004) of image pairs.

For each pair, local means, variances and the covariance are taken under an 11x11 Gaussian window of
sigma 1.5 px (the paper's), at every position where the window lies inside the image (a 28x28 image
gives an 18x18 map), and

    SSIM = (2 mu_x mu_y + C1) (2 sigma_xy + C2) / ((mu_x² + mu_y² + C1) (sigma_x² + sigma_y² + C2)),

C1 = (0.01 L)², C2 = (0.03 L)² for the data range L, averaged over the map. It is 1 for identical
images and at most 1 otherwise. The variances are the window's population (weighted) ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _window(device: torch.device) -> torch.Tensor:
    t = torch.arange(WINDOW, dtype=torch.float64, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-(t**2) / (2 * SIGMA**2))
    return g / g.sum()  # (WINDOW,)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pair SSIM of two batches of grey images, (N, H, W) or (N, 1, H, W) floats -> (N,) float64."""
    if x.shape != y.shape:
        raise ValueError(f"image batches differ in shape: {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1 or min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"expected (N, H, W) or (N, 1, H, W) grey images of at least {WINDOW}x{WINDOW} pixels")
    x, y = x.double(), y.double()
    g = _window(x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:  # (N, 1, H, W) -> (N, 1, H - 10, W - 10), separable
        return F.conv2d(F.conv2d(t, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(dim=1)
