"""`pix2pix`: garments translated from sketches of real images by a pix2pix U-Net (``training.pix2pix``).

Like ae-launder's, its fakes are made from real images of the bank's split: each is the generator's
translation of the training operator's sketch of a real image (``training.sketch``, without augmentation),
and keeps that image's label. The image's shape comes through (the outline is the input); its shading and
texture are the generator's. Training is pix2pix's loss (patch discriminator, BCE, plus lambda = 10 times L1) on
augmented sketches made on the fly, as ``train-pix2pix`` trains; a checkpoint of that command
(``models/weights/pix2pix``) is a zoo model of this family too.
"""

from __future__ import annotations

import torch
from torch import nn

from models import PatchDiscriminatorConfig, Pix2PixGenerator, Pix2PixGeneratorConfig
from training.pix2pix import FAMILY_NAME, Pix2PixPair
from training.sketch import augmented_sketch, sketch
from training.zoo.common import Family, FamilyTrainer, ZooOptions

NAME = FAMILY_NAME
L1_WEIGHT = 10.0  # lambda, as the shipped translator's (docs/pix2pix.md)


class Trainer(FamilyTrainer):
    def __init__(self, opts: ZooOptions, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(opts, device, rng)
        g_config = Pix2PixGeneratorConfig(**opts.arch)
        self.pair = Pix2PixPair(
            g_config, PatchDiscriminatorConfig(channels=g_config.channels), lr_g=opts.lr, lr_d=opts.lr, device=device
        )
        self.model = self.pair.G

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        sketches = augmented_sketch(real, self.rng)  # (B, 1, 28, 28) in -1..1
        loss_d, loss_g, l1, _, _ = self.pair.step(sketches, real, l1_weight=L1_WEIGHT)
        return {"loss_d": loss_d, "loss_g": loss_g, "l1": l1}


def sample(model: nn.Module, labels: torch.Tensor, noise: torch.Tensor | None, reals: torch.Tensor | None):
    return model(sketch(reals))


FAMILY = Family(
    name=NAME,
    summary="pix2pix U-Net translating sketches (thresholded Sobel) of real images back to garments",
    model_class=Pix2PixGenerator,
    trainer=Trainer,
    sample=sample,
    noise_size=lambda model: 0,
    defaults={"steps": 2000, "minutes": 9.0, "batch_size": 64, "lr": 2e-4},
    uses_reals=True,
)
