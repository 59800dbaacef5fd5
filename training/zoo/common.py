"""What every zoo family shares: options, the family record, the training loop, and fake banks.

A family module defines a registered model class (the exported network), a
``FamilyTrainer`` that takes one optimisation step on a batch of real images,
and a ``sample`` function that turns class labels and noise (or, for
``ae-launder``, real images) into float images in -1..1. Everything else lives
here once: the data, the time budget, the run directory, the checkpoint, and
the bank file (quantized exactly as the service quantizes its own images).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models import NAMES, NUM_CLASSES, load_model, quantize, read_config, save_model, to_float
from training.artifacts import labelled_grid
from training.data import Split, load_split
from training.device import resolve_device

log = logging.getLogger(__name__)

OPTIONS_NAME = "options.json"
STEPS_NAME = "steps.jsonl"
GRID_NAME = "samples.png"
MODEL_DIR = "model"
GRID_PER_CLASS = 10
BANK_KEYS = ("images", "labels", "meta")


class ZooError(ValueError):
    """A zoo option, run directory or model is unusable; the message says which and why."""


class BankError(ZooError):
    """A fake bank file is missing or malformed; the message names the file."""


@dataclass
class ZooOptions:
    """One zoo training run. ``None`` takes the family's default (see ``Family.defaults``)."""

    family: str
    out: str
    seed: int = 0
    minutes: float | None = None  # wall-clock budget of the training loop; stops at minutes or steps, whichever first
    steps: int | None = None  # optimisation steps
    batch_size: int | None = None
    lr: float | None = None  # Adam learning rate
    data_dir: str | None = None
    dataset: str = "fashion-mnist"
    limit: int | None = None  # use only the first N training images
    device: str = "auto"
    threads: int = 0  # torch intra-op threads (0: torch's choice)
    log_every: int = 50  # steps between steps.jsonl lines
    progress: bool = True
    arch: dict[str, Any] = field(default_factory=dict)  # overrides of the family's model config (tiny test models)


class FamilyTrainer:
    """One family's optimisation state. Subclasses set ``self.model`` and implement ``step``."""

    model: nn.Module

    def __init__(self, opts: ZooOptions, device: torch.device, rng: torch.Generator) -> None:
        self.opts, self.device, self.rng = opts, device, rng

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update from (B, 1, 28, 28) real images in -1..1 and their (B,) labels; returns scalar stats."""
        raise NotImplementedError

    def export(self) -> nn.Module:
        """The network to save and sample from, in eval mode (an EMA copy where the family keeps one)."""
        return self.model.eval()


SampleFn = Callable[[nn.Module, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class Family:
    """A generator family of the zoo.

    ``sample(model, labels, noise, reals)`` returns (B, 1, 28, 28) floats in -1..1:
    ``noise`` is (B, noise_size(model)) standard normal drawn by the caller from the
    bank's seed (None when the size is 0); ``reals`` is (B, 1, 28, 28) real images in
    -1..1 for families that transform real images (``uses_reals``), else None.
    """

    name: str
    summary: str
    model_class: type[nn.Module]
    trainer: Callable[[ZooOptions, torch.device, torch.Generator], FamilyTrainer]
    sample: SampleFn
    noise_size: Callable[[nn.Module], int]
    defaults: dict[str, Any] = field(default_factory=dict)  # steps, minutes, batch_size, lr
    uses_reals: bool = False
    sample_batch: int = 500  # images per forward pass when sampling a bank


class Ema:
    """An exponential moving average of a model's weights (buffers copied), warmed up over the first steps."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        # Early on the average would be mostly the random initialisation: let it follow faster.
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


def resolve_options(family: Family, opts: ZooOptions) -> ZooOptions:
    """Fill the family's defaults into the options left unset, and check them."""
    filled = dataclasses.replace(opts, **{k: v for k, v in family.defaults.items() if getattr(opts, k, None) is None})
    if filled.steps is None or filled.steps < 1:
        raise ZooError(f"--steps must be at least 1, got {filled.steps}")
    if filled.minutes is None or filled.minutes <= 0:
        raise ZooError(f"--minutes must be positive, got {filled.minutes}")
    if filled.batch_size is None or filled.batch_size < 2:
        raise ZooError(f"--batch-size must be at least 2, got {filled.batch_size}")
    if filled.lr is None or filled.lr <= 0:
        raise ZooError(f"--lr must be positive, got {filled.lr}")
    if filled.limit is not None and filled.limit < 2:
        raise ZooError(f"--limit must be at least 2, got {filled.limit}")
    if filled.threads < 0:
        raise ZooError(f"--threads must be 0 (torch's choice) or more, got {filled.threads}")
    return filled


def grid_labels() -> torch.Tensor:
    """(100,) labels of the sample grid: one row of GRID_PER_CLASS per class."""
    return torch.arange(NUM_CLASSES).repeat_interleave(GRID_PER_CLASS)


def balanced_labels(n: int) -> torch.Tensor:
    """(n,) labels 0, 1, ..., 9, 0, 1, ...: every class n // 10 or n // 10 + 1 times."""
    return torch.arange(n) % NUM_CLASSES


def pick_reals(split: Split, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Indices into ``split`` of distinct images whose labels are ``labels``, drawn at random from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    picked = torch.empty(len(labels), dtype=torch.int64)
    for k in range(NUM_CLASSES):
        want = (labels == k).nonzero().squeeze(1)
        have = (split.labels == k).nonzero().squeeze(1)
        if len(want) > len(have):
            raise ZooError(f"asked for {len(want)} images of class {k}, the split holds {len(have)}")
        picked[want] = have[torch.randperm(len(have), generator=gen)[: len(want)]]
    return picked


@torch.no_grad()
def generate(
    family: Family,
    model: nn.Module,
    labels: torch.Tensor,
    noise: torch.Tensor | None,
    reals: torch.Tensor | None,
    *,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Sample in batches and quantize as the service does: (N,) labels -> (N, 28, 28) uint8 on the CPU."""
    device = next(model.parameters()).device
    batch_size = batch_size or family.sample_batch
    out = []
    for i in range(0, len(labels), batch_size):
        y = labels[i : i + batch_size].to(device)
        z = None if noise is None else noise[i : i + batch_size].to(device)
        x = None if reals is None else to_float(reals[i : i + batch_size]).unsqueeze(1).to(device)
        images = family.sample(model, y, z, x)  # (B, 1, 28, 28) float in -1..1
        out.append(quantize(images).squeeze(1).cpu())  # (B, 28, 28) uint8
    return torch.cat(out) if out else torch.empty(0, 28, 28, dtype=torch.uint8)


def code_version() -> str:
    from training.loop import code_version as version  # the git commit, as the GAN's checkpoints record it

    return version()


def train(family: Family, opts: ZooOptions) -> Path:
    """Train one family into ``opts.out``; returns the exported model directory (``out/model``)."""
    opts = resolve_options(family, opts)
    run_dir = Path(opts.out)
    if (run_dir / OPTIONS_NAME).exists():
        raise ZooError(f"{run_dir}: already holds a run ({OPTIONS_NAME}); choose another --out")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    rng = torch.Generator(device=device).manual_seed(opts.seed)  # batches and training noise

    # Load the data as one uint8 tensor on the device.
    train_split = load_split("train", opts.dataset, opts.data_dir, limit=opts.limit).to(device)
    if len(train_split) < opts.batch_size:
        raise ZooError(f"--batch-size {opts.batch_size} exceeds the {len(train_split)} training images")

    try:
        trainer = family.trainer(opts, device, rng)
    except (TypeError, ValueError) as exc:  # an unknown or invalid --arch setting
        raise ZooError(f"{family.name}: cannot build the model from --arch {opts.arch} ({exc})") from None
    # Write the options before the first step.
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OPTIONS_NAME).write_text(json.dumps(dataclasses.asdict(opts), indent=2) + "\n")
    (run_dir / STEPS_NAME).unlink(missing_ok=True)

    n_params = sum(p.numel() for p in trainer.model.parameters())
    log.info("%s: %d parameters, %d training images, on %s", family.name, n_params, len(train_split), device)

    # Train until the step count or the time budget, whichever comes first.
    B = opts.batch_size
    steps_per_epoch = len(train_split) // B
    perm = torch.randperm(len(train_split), generator=rng, device=device)
    window: dict[str, float] = {}
    window_steps, window_start = 0, time.perf_counter()
    started = time.perf_counter()
    budget_s = opts.minutes * 60.0
    step, stopped_by = 0, "steps"
    bar = tqdm(total=opts.steps, desc=family.name, disable=not opts.progress, unit="step")
    while step < opts.steps:
        if time.perf_counter() - started >= budget_s:
            stopped_by = "minutes"
            break
        i = step % steps_per_epoch
        if i == 0 and step:
            perm = torch.randperm(len(train_split), generator=rng, device=device)
        idx = perm[i * B : (i + 1) * B]
        real = to_float(train_split.images[idx]).unsqueeze(1)  # (B, 1, 28, 28)
        stats = trainer.step(real, train_split.labels[idx])
        step += 1
        for key, value in stats.items():
            window[key] = window.get(key, 0.0) + float(value)
        window_steps += 1
        bar.update(1)

        # Log the means since the last line.
        if step % opts.log_every == 0 or step == opts.steps:
            now = time.perf_counter()
            row = {"step": step, "epoch": step * B / len(train_split), "seconds": round(now - started, 2)}
            row.update({k: v / window_steps for k, v in window.items()})
            row["images_per_s"] = window_steps * B / max(now - window_start, 1e-9)
            with open(run_dir / STEPS_NAME, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k not in ("step", "epoch", "seconds")})
            window, window_steps, window_start = {}, 0, now
    bar.close()
    seconds = time.perf_counter() - started
    log.info("%s: %d steps in %.0f s (stopped by %s)", family.name, step, seconds, stopped_by)

    # Export the model and its sample grid.
    model = trainer.export()
    facts = {
        "family": family.name,
        "seed": opts.seed,
        "steps": step,
        "seconds": round(seconds, 1),
        "stopped_by": stopped_by,
        "epochs": round(step * B / len(train_split), 3),
        "dataset": opts.dataset,
        "train_images": len(train_split),
        "batch_size": B,
        "lr": opts.lr,
        "device": str(device),
        "code_version": code_version(),
    }
    model_dir = save_model(model, run_dir / MODEL_DIR, training=facts)
    write_grid(
        family, model, run_dir / GRID_NAME, seed=opts.seed, split=train_split, title=f"{family.name} step {step}"
    )
    log.info("%s: model in %s", family.name, model_dir)
    return model_dir


def write_grid(family: Family, model: nn.Module, path: Path, *, seed: int, split: Split | None, title: str) -> Path:
    """A labelled grid, one row per class, from noise fixed by ``seed`` (reals: the first of each class)."""
    labels = grid_labels()
    noise = _noise(family, model, len(labels), seed)
    reals = None
    if family.uses_reals:
        cpu = split.to("cpu")
        reals = torch.cat([cpu.images[cpu.labels == k][:GRID_PER_CLASS] for k in range(NUM_CLASSES)])
        labels = torch.cat([cpu.labels[cpu.labels == k][:GRID_PER_CLASS] for k in range(NUM_CLASSES)])
    images = generate(family, model, labels, noise, reals)
    rows = list(NAMES)
    if len(images) != NUM_CLASSES * GRID_PER_CLASS:  # a tiny data set may lack some classes
        rows = [""] * max(1, -(-len(images) // GRID_PER_CLASS))
        pad = len(rows) * GRID_PER_CLASS - len(images)
        images = torch.cat([images, torch.zeros(pad, 28, 28, dtype=torch.uint8)])
    labelled_grid(images, rows, title=title).save(path)
    return path


def _noise(family: Family, model: nn.Module, n: int, seed: int) -> torch.Tensor | None:
    size = family.noise_size(model)
    if size == 0:
        return None
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, size, generator=gen)  # drawn on the CPU: a seed means the same on every device


def load_family_model(
    families: dict[str, Family], model_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[Family, nn.Module, dict[str, Any]]:
    """A zoo model directory -> (its family, the model in eval mode, its config.json)."""
    config = read_config(model_dir)
    name = (config.get("training") or {}).get("family")
    family = families.get(name) if isinstance(name, str) else None
    if family is None or family.model_class.__name__ != config["class_name"]:
        raise ZooError(
            f"{Path(model_dir) / 'config.json'}: not a zoo model (training.family {name!r}, "
            f"class {config['class_name']}; known families: {', '.join(families)})"
        )
    model = load_model(model_dir, expected=family.model_class, device=device)
    return family, model, config


def sample_bank(
    families: dict[str, Family],
    model_dir: str | Path,
    n: int,
    seed: int,
    split: str = "train",
    data_dir: str | None = None,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``n`` quantized fakes with balanced labels: (N, 28, 28) uint8, (N,) int64, and the bank's meta."""
    if n < 1:
        raise ZooError(f"--n must be at least 1, got {n}")
    if split not in ("train", "test"):
        raise ZooError(f"unknown split {split!r}; expected train or test")
    family, model, config = load_family_model(families, model_dir, resolve_device(device))
    labels = balanced_labels(n)
    noise = _noise(family, model, n, seed)
    reals = sources = None
    if family.uses_reals:
        real_split = load_split(split, config["training"].get("dataset", "fashion-mnist"), data_dir)
        sources = pick_reals(real_split, labels, seed)
        reals = real_split.images[sources]  # (N, 28, 28) uint8
    images = generate(family, model, labels, noise, reals, batch_size=batch_size)
    facts = config.get("training") or {}
    meta: dict[str, Any] = {
        "family": family.name,
        "model": str(model_dir),
        "model_seed": facts.get("seed"),
        "model_steps": facts.get("steps"),
        "code_version": facts.get("code_version"),
        "seed": seed,
        "split": split,
        "count": n,
    }
    if sources is not None:
        meta["sources"] = f"{split} split, indices in the bank's source_index array"
        meta["source_index"] = sources.tolist()
    return images, labels.to(torch.int64), meta


def save_bank(path: str | Path, images: torch.Tensor, labels: torch.Tensor, meta: dict[str, Any]) -> Path:
    """Write a bank as npz: images uint8 (N, 28, 28), labels int64 (N,), meta (a JSON string).

    A bank of real images passed through a model also holds ``source_index`` (N,),
    their indices in the split.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    arrays = {
        "images": images.cpu().numpy().astype(np.uint8),
        "labels": labels.cpu().numpy().astype(np.int64),
    }
    if "source_index" in meta:
        arrays["source_index"] = np.asarray(meta.pop("source_index"), dtype=np.int64)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    tmp = path.with_name(f".{path.name}.tmp")  # an interrupted write never leaves a bank that looks finished
    with open(tmp, "wb") as f:  # np.savez would append .npz to a name without it
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def load_bank(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Read and check a bank: (N, 28, 28) uint8 images, (N,) int64 labels in 0-9, meta dict with count N."""
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: bank file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in BANK_KEYS if k not in npz.files]
            if missing:
                raise BankError(f"{path}: missing array {missing[0]!r} (a bank holds {', '.join(BANK_KEYS)})")
            images, labels, meta_text = npz["images"], npz["labels"], npz["meta"]
    except BankError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # not a zip, truncated, or an object array
        raise BankError(f"{path}: not a readable npz bank ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise BankError(f"{path}: images must be uint8 of shape (N, 28, 28), found {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
        raise BankError(
            f"{path}: labels must be int64 of shape ({images.shape[0]},), found {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise BankError(f"{path}: labels must be class ids 0-{NUM_CLASSES - 1}, found {labels.min()}..{labels.max()}")
    try:
        meta = json.loads(str(meta_text))
    except json.JSONDecodeError as exc:
        raise BankError(f"{path}: meta is not JSON ({exc})") from None
    if not isinstance(meta, dict) or "family" not in meta:
        raise BankError(f"{path}: meta must be a JSON object naming the family")
    if meta.get("count") != images.shape[0]:
        raise BankError(f"{path}: meta says {meta.get('count')} images, the file holds {images.shape[0]}")
    return torch.from_numpy(images), torch.from_numpy(labels), meta
