"""`explain`: the per-class GradCAM figure: where the discriminator (or detector) sees signs of a fake.

One row per class: ``--per-class`` generated images on the left, the same images
with their GradCAM heatmaps on the right, each captioned with the verdict. Image
*i* of class *c* is generated from seed ``--seed + i``, exactly as
``GET /generate?label=c&seed=SEED&n=N`` serves it, so any cell can be redrawn
and explained in the service. The heatmaps are computed by the code the service
uses (``models.gradcam``: layer, sign and overlay), so the figure shows what
``POST /explain`` answers.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import models
from models import DETECTORS, NAMES, WEIGHTS_DIR, CheckpointError, Discriminator
from models.gradcam import Explanation, NoLayer, gradcam, layers_of, overlay
from training.device import resolve_device

NAME = "explain"
HELP = "draw the per-class GradCAM figure: generated images and heatmaps of what pushed the verdict toward fake"
MODELS = {"discriminator": Discriminator, "detector": DETECTORS}
log = logging.getLogger(__name__)


class ExplainError(Exception):
    """Anything that stops the figure; the message is meant for the user."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights-dir",
        type=Path,
        default=WEIGHTS_DIR,
        metavar="DIR",
        help="folder with generator/ and discriminator/ (and detector/) checkpoints, e.g. a run directory "
        "(default: the shipped weights)",
    )
    p.add_argument("--model", choices=tuple(MODELS), default="discriminator", help="which network to explain")
    p.add_argument("--per-class", type=int, default=6, metavar="N", help="images per class (default 6)")
    p.add_argument("--seed", type=int, default=0, help="image i of each class uses seed + i (default 0)")
    p.add_argument(
        "--normalize",
        choices=("figure", "image"),
        default="image",
        help="image (default): each map scaled to its own peak, as POST /explain does (the caption gives the "
        "peak); figure: one colour scale for every map, so strengths compare across images",
    )
    p.add_argument("--scale", type=int, default=4, help="enlargement of each cell (default 4: 112x112 pixels)")
    p.add_argument("--out", type=Path, default=Path("explain.png"), metavar="FILE", help="the figure (PNG)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")


def _load(
    directory: Path, expected: type[torch.nn.Module] | tuple[type[torch.nn.Module], ...], device: torch.device
) -> torch.nn.Module:
    try:
        module = models.load_model(directory, expected=expected, device=device)
    except CheckpointError as exc:
        raise ExplainError(f"cannot load {directory}: {exc}") from None
    return module.eval().requires_grad_(False)


def generate(generator: torch.nn.Module, label: int, seeds: list[int], device: torch.device) -> torch.Tensor:
    """(N, 28, 28) uint8 images of one class, one per seed, as the service generates them."""
    z = models.noise(seeds, generator.z_dim).to(device)  # (N, z_dim), drawn on the CPU
    y = torch.full((len(seeds),), label, dtype=torch.long, device=device) if generator.conditional else None
    with torch.no_grad():
        return models.quantize(generator(z, y))[:, 0].cpu()  # (N, 28, 28)


def explain_classes(
    generator: torch.nn.Module,
    judge: torch.nn.Module,
    *,
    per_class: int,
    seed: int,
    device: torch.device,
    temperature: float | None = None,
) -> tuple[np.ndarray, list[list[Explanation]]]:
    """Generated images (10, N, 28, 28) uint8 and their explanations, one row per class (the judge's logits
    divided by its calibration ``temperature`` when it has one)."""
    seeds = [(seed + i) % 2**32 for i in range(per_class)]
    images, rows = [], []
    for label in range(models.NUM_CLASSES):
        batch = generate(generator, label, seeds, device)
        labels = torch.full((per_class,), label, dtype=torch.long) if judge.conditional else None
        rows.append(gradcam(judge, batch, labels, temperature=temperature))
        images.append(batch.numpy())
    return np.stack(images), rows


def p_real(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit)) if logit >= 0 else math.exp(logit) / (1.0 + math.exp(logit))


def draw(
    images: np.ndarray,
    rows: list[list[Explanation]],
    *,
    model_name: str,
    normalize: str,
    scale: int,
    subtitle: str,
    out: Path,
) -> Path:
    """Write the figure: a row per class, the images, then the same images with their heatmaps."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    num_classes, per_class = images.shape[:2]
    shared_peak = max((e.peak for row in rows for e in row), default=0.0)
    cell = 0.3 + 0.3 * scale  # inches per image
    fig = Figure(figsize=(1.6 + 2 * per_class * cell, 1.1 + num_classes * (cell + 0.25)), dpi=100)
    grid = fig.add_gridspec(num_classes, 2 * per_class + 1, width_ratios=[1] * per_class + [0.25] + [1] * per_class)
    for r in range(num_classes):
        for i in range(per_class):
            e = rows[r][i]
            heat = e.normalized if normalize == "image" else (e.heat / shared_peak if shared_peak > 0 else e.heat)
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(images[r, i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(NAMES[r], rotation=0, ha="right", va="center", fontsize=10)
            ax = fig.add_subplot(grid[r, per_class + 1 + i])
            ax.imshow(overlay(images[r, i], heat, scale), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            p = p_real(e.logit)
            verdict, confidence = ("real", p) if p >= 0.5 else ("fake", 1.0 - p)
            ax.set_title(
                f"{verdict} {confidence:.2f}, peak {e.peak:.2g}",
                fontsize=7,
                pad=2,
                color="#1d7a3a" if verdict == "real" else "#b3261e",
            )
    layer = next(iter(rows[0])).layer if rows and rows[0] else "?"
    scaled = "one colour scale for all maps" if normalize == "figure" else "each map scaled to its own peak"
    fig.suptitle(
        f"Generated images (left) and GradCAM of the {model_name} (right, layer {layer}): "
        f"warm = pushed the verdict toward fake; {scaled}\n{subtitle}",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.09, right=0.99, top=1 - 0.9 / fig.get_figheight(), bottom=0.01, wspace=0.08)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    # A 256-colour palette: a third of the size of matplotlib's RGBA, and the same to the eye.
    Image.open(buffer).convert("RGB").quantize(256).save(out, optimize=True)
    return out


def summarize(rows: list[list[Explanation]]) -> list[str]:
    """One line per class: how many were called fake, the mean P(real), the mean and largest peak."""
    lines = []
    for label, row in enumerate(rows):
        probs = [p_real(e.logit) for e in row]
        peaks = [e.peak for e in row]
        fakes = sum(p < 0.5 for p in probs)
        lines.append(
            f"{NAMES[label]:<12} fake {fakes}/{len(row)}  mean P(real) {np.mean(probs):.3f}  "
            f"peak mean {np.mean(peaks):.4g} max {np.max(peaks):.4g}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        if args.per_class < 1 or args.scale < 1:
            raise ExplainError("--per-class and --scale must be at least 1")
        device = resolve_device(args.device)
        weights = Path(args.weights_dir)
        generator = _load(weights / "generator", models.Generator, device)
        judge = _load(weights / args.model, MODELS[args.model], device)
        try:
            layers_of(judge)
        except NoLayer as exc:
            raise ExplainError(str(exc)) from None
        if not generator.conditional:
            raise ExplainError("the generator is unconditional: a figure with a row per class needs a conditional one")
        try:
            temperature = models.read_temperature(judge.checkpoint, weights / args.model)
        except CheckpointError as exc:
            raise ExplainError(str(exc)) from None
        images, rows = explain_classes(
            generator, judge, per_class=args.per_class, seed=args.seed, device=device, temperature=temperature
        )
        facts = generator.checkpoint.get("training", {})
        subtitle = (
            f"generator: {facts.get('epochs', '?')} epochs on {facts.get('dataset', '?')}, "
            f"code {facts.get('code_version', '?')}; seeds {args.seed}–{args.seed + args.per_class - 1} per class"
        )
        out = draw(
            images,
            rows,
            model_name=args.model,
            normalize=args.normalize,
            scale=args.scale,
            subtitle=subtitle,
            out=Path(args.out),
        )
    except (ExplainError, ValueError) as exc:
        sys.stderr.write(f"explain: error: {exc}\n")
        return 2
    for line in summarize(rows):
        sys.stdout.write(line + "\n")
    log.info("wrote %s", out)
    return 0
