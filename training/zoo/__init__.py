"""A zoo of fake-image generators of other families than the project's own GAN.

Each family is trained by the project's own code on the real training split, so
that the real/fake detector can be trained and tested against designs it was
not built around. Every fake is quantized to uint8 with ``models.quantize``,
exactly as the service quantizes its own images.

- ``FAMILIES``: name -> ``Family`` (upsample-gan, cvae, ddpm, ae-launder, pix2pix).
- ``train_family(name, options)`` -> the exported model directory.
- ``sample_bank(model_dir, n, seed, split)`` -> (images uint8 (N, 28, 28), labels int64 (N,), meta).
- ``save_bank`` / ``load_bank``: the npz bank file, checked on reading.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from training.zoo import ae_launder, cvae, ddpm, pix2pix, upsample_gan
from training.zoo.common import BankError, Family, ZooError, ZooOptions, load_bank, save_bank
from training.zoo.common import sample_bank as _sample_bank
from training.zoo.common import train as _train

FAMILIES: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in (upsample_gan, cvae, ddpm, ae_launder, pix2pix)}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ZooError(f"unknown family {name!r}; expected one of {', '.join(FAMILIES)}") from None


def train_family(name: str, options: ZooOptions) -> Path:
    """Train family ``name`` into ``options.out``; returns ``options.out/model``."""
    return _train(get_family(name), dataclasses.replace(options, family=name))


def sample_bank(
    model_dir: str | Path,
    n: int,
    seed: int,
    split: str = "train",
    data_dir: str | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``n`` fakes from a zoo model, labels balanced over the classes; the same seed gives the same bank.

    ``split`` is the real split the bank is meant to stand beside (recorded in the
    meta); ae-launder and pix2pix also draw their source images from it. Keywords: ``device``,
    ``batch_size``.
    """
    return _sample_bank(FAMILIES, model_dir, n, seed, split, data_dir, **kwargs)


__all__ = [
    "FAMILIES",
    "BankError",
    "Family",
    "ZooError",
    "ZooOptions",
    "get_family",
    "load_bank",
    "sample_bank",
    "save_bank",
    "train_family",
]
