"""GAN-train (Shmelkov et al. 2018), a.k.a. classification accuracy score (Ravuri & Vinyals 2019),
and the one classifier training recipe.

GAN-train trains a fresh classifier on generated images only and tests it on
the real test set: it is high only when the generated images are both
recognisable and diverse enough to teach every class. Its reference value is
the same recipe trained on the same number of real images. The reference
classifier (``train-classifier``) is the same recipe with more epochs on all
60,000 training images, so this module holds the recipe for both.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.classifier import Classifier, ClassifierConfig
from models.labels import NUM_CLASSES
from models.pixels import to_float
from training.data import Split
from training.metrics.features import check_uint8_images, embed
from training.metrics.gan_test import ClassAccuracy, class_accuracy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """How a classifier is trained: architecture, optimizer, schedule and augmentation."""

    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3  # peak learning rate (AdamW; linear warm-up, then cosine decay)
    weight_decay: float = 5e-4  # AdamW's decoupled weight decay
    flip: bool = True  # random horizontal flips (a mirrored garment is the same class)
    shift: int = 0  # random translations of up to this many pixels each way (0: none; slows short schedules)
    channels: int = 32  # ClassifierConfig.channels
    feature_dim: int = 128  # ClassifierConfig.feature_dim
    dropout: float = 0.3  # ClassifierConfig.dropout

    def classifier_config(self, num_classes: int = NUM_CLASSES) -> ClassifierConfig:
        return ClassifierConfig(
            num_classes=num_classes, channels=self.channels, feature_dim=self.feature_dim, dropout=self.dropout
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The reference classifier (models/weights/classifier): all 60,000 training images.
REFERENCE_RECIPE = Recipe()
# GAN-train and its real-data reference inside `evaluate`: a narrower network, fewer epochs,
# and (by default) 10,000 images, so that both trainings fit the 10-minute CPU budget.
LEAN_RECIPE = Recipe(epochs=4, batch_size=128, lr=3e-3, channels=16, feature_dim=64)


def lr_factor(step: int, total_steps: int, warmup: float = 0.2) -> float:
    """Learning-rate multiplier: a linear warm-up over the first ``warmup`` of the steps, then cosine to 0."""
    warm = max(1, round(warmup * total_steps))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))


def augment(images: torch.Tensor, *, flip: bool, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Random flips and translations of uint8 (B, 28, 28) images; randomness from ``generator`` (CPU)."""
    b, h, w = images.shape
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(images.device)  # (B,)
        images = torch.where(mask[:, None, None], images.flip(-1), images)
    if shift:
        # Pad with the background (0), then cut one 28x28 window per image at a random offset.
        padded = F.pad(images, (shift, shift, shift, shift))  # (B, 28 + 2s, 28 + 2s)
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator).to(images.device)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator).to(images.device)
        rows = (torch.arange(h, device=images.device)[None, :] + dy[:, None])[:, :, None]  # (B, 28, 1)
        cols = (torch.arange(w, device=images.device)[None, :] + dx[:, None])[:, None, :]  # (B, 1, 28)
        batch = torch.arange(b, device=images.device)[:, None, None]  # (B, 1, 1)
        images = padded[batch, rows, cols]  # (B, 28, 28)
    return images


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: Recipe,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Classifier:
    """Train a fresh classifier on uint8 (N, 28, 28) images and (N,) labels; return it in eval mode.

    Deterministic for a given seed on the CPU: the initialisation, the batch order,
    the augmentation and dropout all draw from seeded generators, and the global RNG
    state is restored afterwards. ``on_epoch(epoch, mean_loss)`` is called after each epoch.
    """
    check_uint8_images(images, "training images")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"training a classifier needs at least 2 images, got {n}")
    device = torch.device(device)
    batch = min(recipe.batch_size, n)
    steps_per_epoch = n // batch  # the last partial batch is dropped: batch norm needs > 1 image
    images, labels = images.to(device), labels.to(device=device, dtype=torch.int64)
    rng = torch.Generator().manual_seed(seed)  # batch order and augmentation, on the CPU for every device

    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=cuda_devices),
        torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True),
    ):
        torch.manual_seed(seed)  # initialisation and dropout
        model = Classifier(recipe.classifier_config(num_classes)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        total_steps = recipe.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total_steps))
        model.train()
        for epoch in range(1, recipe.epochs + 1):
            perm = torch.randperm(n, generator=rng).to(device)
            total = torch.zeros((), device=device)
            bar = tqdm(range(steps_per_epoch), desc=f"classifier epoch {epoch}/{recipe.epochs}", disable=not progress)
            for i in bar:
                idx = perm[i * batch : (i + 1) * batch]
                x = augment(images[idx], flip=recipe.flip, shift=recipe.shift, generator=rng)  # (b, 28, 28)
                logits = model(to_float(x).unsqueeze(1))  # (b, num_classes)
                loss = F.cross_entropy(logits, labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.detach()
            mean_loss = float(total) / steps_per_epoch
            log.debug("classifier epoch %d/%d: loss %.4f", epoch, recipe.epochs, mean_loss)
            if on_epoch is not None:
                on_epoch(epoch, mean_loss)
    return model.eval()


def accuracy_on(
    classifier: Classifier, split: Split, *, device: str | torch.device = "cpu", batch_size: int = 1000
) -> ClassAccuracy:
    """A classifier's accuracy on a labelled split, overall and per class."""
    out = embed(classifier, split.images, device=device, batch_size=batch_size)
    return class_accuracy(out.predictions, split.labels.cpu(), classifier.config.num_classes)


def train_and_test(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test: Split,
    recipe: Recipe = LEAN_RECIPE,
    *,
    seed: int,
    device: str | torch.device = "cpu",
) -> ClassAccuracy:
    """GAN-train when the training images are generated; its reference when they are real.

    Trains ``recipe`` on the given images and returns the accuracy on ``test`` (real).
    """
    model = fit_classifier(train_images, train_labels, recipe, seed=seed, device=device)
    return accuracy_on(model, test, device=device)
