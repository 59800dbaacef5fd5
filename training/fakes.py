"""Where the detector's fakes come from: the project's own generators, and banks of other families' samples.

A fake source is one of

- a generator checkpoint directory of the project's GAN (``models.Generator``): fresh fakes at every draw,
  quantized to uint8 exactly as the service serves them; family ``gan``;
- a fake bank (``.npz``, written by ``python -m training zoo sample``): uint8 images of another generator
  family (an upsampling GAN, a VAE, a diffusion model, an autoencoder, ...) with their labels, drawn at
  random; its family is the one the bank records.

``FakeMix`` shares the fakes of a batch among its sources, and ``test_fakes`` draws a source's fakes for a
set of real test images, so that the figures of a detector always set the same reals against each source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from models import Generator, load_model, quantize
from training.evaluation import generate_uint8
from training.zoo.common import BankError, load_bank

UNKNOWN = -1  # label of an image whose class is not given
GAN_FAMILY = "gan"  # the project's own conditional DCGAN (models.networks.Generator)


def draw_fakes(
    g: Generator, real_labels: torch.Tensor, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A generator's fakes for a set of reals, drawn as ``evaluate`` draws them: uint8 (n, 28, 28) images made for
    the reals' labels, and the labels they carry (the reals', or UNKNOWN when the generator takes none)."""
    images = generate_uint8(g, real_labels, seed, device)
    labels = real_labels.clone() if g.conditional else torch.full((len(real_labels),), UNKNOWN)
    return images, labels


class FakeSource(Protocol):
    path: str
    family: str
    conditional: bool

    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n fakes: uint8 (n, 28, 28) on the CPU, and labels (n,) (UNKNOWN when unconditional)."""
        ...

    def for_labels(self, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fakes made for (or drawn with) these labels: uint8 (n, 28, 28) and the labels they carry."""
        ...

    def describe(self) -> dict[str, Any]: ...


class GeneratorSource:
    """A frozen generator of the project: fresh fakes at every draw."""

    def __init__(self, path: str | Path, device: torch.device) -> None:
        self.path = str(path)
        self.device = device
        self.generator = load_model(path, expected=Generator, device=device).requires_grad_(False)
        self.family = GAN_FAMILY
        self.conditional = bool(self.generator.conditional)

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        z = torch.randn(n, g.z_dim, generator=rng, device=rng.device).to(self.device)
        if g.conditional:
            y = torch.randint(0, g.config.num_classes, (n,), generator=rng, device=rng.device).to(self.device)
        else:
            y = torch.full((n,), UNKNOWN, dtype=torch.long, device=self.device)
        images = quantize(g(z, y if g.conditional else None)).squeeze(1)  # (n, 28, 28) uint8, as served
        return images.cpu(), y.cpu()

    def for_labels(self, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return draw_fakes(self.generator, labels, seed, self.device)

    def describe(self) -> dict[str, Any]:
        facts = self.generator.checkpoint.get("training", {})
        keep = ("epochs", "seed", "dataset", "code_version")
        return {"path": self.path, "family": self.family, "conditional": self.conditional} | {
            k: facts[k] for k in keep if k in facts
        }


class BankSource:
    """A bank of another family's samples, drawn uniformly at random (with replacement)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.images, self.labels, self.meta = load_bank(path)
        self.family = str(self.meta["family"])
        self.conditional = bool((self.labels != UNKNOWN).all())

    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.images), (n,), generator=rng, device=rng.device).cpu()
        return self.images[idx], self.labels[idx]

    def for_labels(self, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For each label, a different bank image of that class (seeded), so the fakes match the reals' classes."""
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.images), generator=g)
        picked: list[int] = []
        by_class: dict[int, list[int]] = {}
        for i in order.tolist():
            by_class.setdefault(int(self.labels[i]), []).append(i)
        for y in labels.tolist():
            pool = by_class.get(int(y)) or by_class.get(UNKNOWN)
            if not pool:
                raise BankError(f"{self.path}: too few images of class {int(y)} for {len(labels)} test images")
            picked.append(pool.pop())
        idx = torch.tensor(picked, dtype=torch.long)
        return self.images[idx], self.labels[idx]

    def describe(self) -> dict[str, Any]:
        # Where the bank came from: the zoo model (its seed and steps) and the bank's own seed and split.
        origin = {k: self.meta[k] for k in ("model_seed", "model_steps", "seed", "split") if k in self.meta}
        return {
            "path": self.path,
            "family": self.family,
            "conditional": self.conditional,
            "images": len(self.images),
        } | {f"bank_{k}" if k in ("seed", "split") else k: v for k, v in origin.items()}


def open_source(spec: str | Path, device: torch.device) -> FakeSource:
    """A bank for an ``.npz`` file, else a generator checkpoint directory."""
    if str(spec).endswith(".npz"):
        return BankSource(spec)
    return GeneratorSource(spec, device)


class FakeMix:
    """Several sources sharing the fakes of every batch: each given path is one equal share, so a path
    given twice is loaded once and draws two shares."""

    def __init__(self, specs: Sequence[str | Path], device: torch.device) -> None:
        given = [str(s) for s in specs]
        self.paths = list(dict.fromkeys(given))  # unique, in the order first given
        self.shares = [given.count(p) for p in self.paths]
        self.sources: list[FakeSource] = [open_source(p, device) for p in self.paths]

    @property
    def any_conditional(self) -> bool:
        return any(s.conditional for s in self.sources)

    @property
    def families(self) -> list[str]:
        return sorted({s.family for s in self.sources})

    def counts(self, n: int) -> list[int]:
        """How many of n fakes each source draws: in proportion to its shares, remainders to the first."""
        total = sum(self.shares)
        counts = [n * s // total for s in self.shares]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts

    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [s.sample(c, rng) for s, c in zip(self.sources, self.counts(n), strict=True) if c]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def describe(self) -> list[dict[str, Any]]:
        total = sum(self.shares)
        return [s.describe() | {"share": k / total} for s, k in zip(self.sources, self.shares, strict=True)]
