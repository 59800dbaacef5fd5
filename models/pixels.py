"""Pixel conventions shared by training and serving.

Images are uint8 0-255 on disk and on the wire, and -1..1 floats inside the
networks. Generated images are quantized before anything judges them: a real
image is always quantized, so an unquantized fake would be trivially detectable.
"""

from __future__ import annotations

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0-255 (any shape) -> float32 in -1..1."""
    return images.to(torch.float32) / 127.5 - 1.0


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float -1..1 -> uint8 0-255, rounded to the nearest level as a PNG would store it."""
    return ((images.detach().float() + 1.0) * 127.5).round().clamp_(0, 255).to(torch.uint8)


def requantize(images: torch.Tensor) -> torch.Tensor:
    """Float -1..1 -> the float value of its uint8 quantization (what a served image is)."""
    return to_float(quantize(images))
