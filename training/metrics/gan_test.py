"""GAN-test (Shmelkov, Schmid & Alahari 2018) and per-class accuracy.

GAN-test is a classifier trained on real data, scored on generated images
against the label each image was generated for. It is high when the images look
like their class; it says nothing about diversity (one perfect image per class
scores 100%), which is what FID, recall and GAN-train are for. Beside it stands
the same classifier's accuracy on real test images: the value a generator whose
images are indistinguishable from real ones would reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from models.labels import NAMES


def class_names(num_classes: int) -> list[str]:
    """How a report names classes: Fashion-MNIST's names for its 10 classes, else the ids as text."""
    return list(NAMES) if num_classes == len(NAMES) else [str(i) for i in range(num_classes)]


@dataclass
class ClassAccuracy:
    overall: float  # 0-1 over all samples
    per_class: list[float | None]  # 0-1 per class; None for a class without samples
    counts: list[int]  # samples per class

    def to_json(self) -> dict[str, Any]:
        names = class_names(len(self.per_class))
        return {
            "overall": self.overall,
            "per_class": dict(zip(names, self.per_class, strict=True)),
            "counts": dict(zip(names, self.counts, strict=True)),
        }


def class_accuracy(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> ClassAccuracy:
    """Accuracy of (N,) predicted class ids against (N,) target ids, overall and per target class."""
    predictions, targets = torch.as_tensor(predictions).cpu(), torch.as_tensor(targets).cpu()
    if predictions.shape != targets.shape or predictions.dim() != 1:
        raise ValueError(f"expected two (N,) tensors, got {tuple(predictions.shape)} and {tuple(targets.shape)}")
    if targets.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    if targets.min() < 0 or targets.max() >= num_classes:
        raise ValueError(f"targets must be class ids in 0..{num_classes - 1}")
    correct = (predictions == targets).to(torch.float64)  # (N,)
    counts = torch.bincount(targets, minlength=num_classes)  # (num_classes,)
    hits = torch.bincount(targets, weights=correct, minlength=num_classes)  # (num_classes,)
    per_class = [float(h / c) if c else None for h, c in zip(hits.tolist(), counts.tolist(), strict=True)]
    return ClassAccuracy(float(correct.mean()), per_class, [int(c) for c in counts.tolist()])


def gan_test(logits: torch.Tensor, requested: torch.Tensor) -> ClassAccuracy:
    """(N, C) reference-classifier logits on generated images vs the (N,) labels they were generated for."""
    if logits.dim() != 2:
        raise ValueError(f"expected (N, C) logits, got {tuple(logits.shape)}")
    return class_accuracy(logits.argmax(dim=1), requested, logits.shape[1])
