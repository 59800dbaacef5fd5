"""What a run directory shows a person: labelled sample grids, their GIF, and loss curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

LABEL_WIDTH = 84  # pixels of row-label margin at scale 2


def image_grid(images: torch.Tensor, columns: int, *, pad: int = 2) -> np.ndarray:
    """uint8 (N, 28, 28) -> one uint8 (H, W) mosaic, rows filled left to right."""
    images = images.cpu().numpy()
    n, h, w = images.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    return grid


def labelled_grid(
    images: torch.Tensor, row_names: Sequence[str], *, scale: int = 2, title: str | None = None
) -> Image.Image:
    """uint8 (rows*cols, 28, 28) with one row per name -> an RGB image with the names at the left."""
    columns = images.shape[0] // len(row_names)
    mosaic = image_grid(images, columns)  # (H, W): 30 px per cell with padding
    mosaic = Image.fromarray(mosaic).resize((mosaic.shape[1] * scale, mosaic.shape[0] * scale), Image.NEAREST)
    top = 18 if title else 0
    canvas = Image.new("RGB", (LABEL_WIDTH + mosaic.width, mosaic.height + top), "white")
    canvas.paste(mosaic.convert("RGB"), (LABEL_WIDTH, top))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    row_h = 30 * scale
    for r, name in enumerate(row_names):
        draw.text((4, top + 2 * scale + r * row_h + row_h // 2 - 6), name, fill="black", font=font)
    if title:
        draw.text((4, 3), title, fill="black", font=font)
    return canvas


def write_gif(frames: Sequence[Path], out: Path, *, frame_ms: int = 400) -> Path | None:
    """An animated GIF of the given PNG frames (the last one held longer)."""
    if not frames:
        return None
    images = [Image.open(p).convert("P", palette=Image.ADAPTIVE) for p in frames]
    durations = [frame_ms] * (len(images) - 1) + [frame_ms * 5]
    images[0].save(out, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return out


def plot_losses(steps_jsonl: Path, out: Path) -> Path | None:
    """Loss curves (D and G, per logged step) from a run's steps.jsonl, as a PNG."""
    if not steps_jsonl.exists():
        return None
    rows = [json.loads(line) for line in steps_jsonl.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss_d"] for r in rows], label="D loss", lw=1)
    ax.plot(steps, [r["loss_g"] for r in rows], label="G loss", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
