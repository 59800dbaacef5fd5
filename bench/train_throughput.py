"""Training throughput: the project's loop against a plain per-sample DataLoader loop.

Both drive the same networks, losses and optimizers on the same device, in one
run. The project's loop keeps the whole data set as one uint8 tensor on the
device and indexes batches from it; the baseline is the usual pytorch/examples
pattern (a Dataset returning one PIL-converted, normalized sample at a time,
batched by a DataLoader). Prints the figures and writes them as JSON.

    python bench/train_throughput.py --steps 60 --out bench/results/train_throughput-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from training.data import load_split
from training.device import resolve_device
from training.loop import Trainer, TrainOptions
from training.losses import d_loss, g_loss


class PerSampleFashionMNIST(Dataset):
    """The per-sample pattern: one PIL image per item, converted and normalized on the CPU."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]  # ToTensor: (1, 28, 28)
        return (x - 0.5) / 0.5, int(self.labels[i])  # Normalize((0.5,), (0.5,))


def dataloader_loop(args, device: torch.device, split) -> float:
    """Images per second of a conventional DataLoader loop over the same networks and step."""
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=args.z_dim, channels=args.channels)).to(device)
    D = Discriminator(DiscriminatorConfig(channels=args.channels)).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    data = PerSampleFashionMNIST(split.images.numpy(), split.labels.numpy())
    loader = DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    B, done, started = args.batch_size, 0, None
    for step, (real, y) in enumerate(loader):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        if step == args.warmup + args.steps:
            break
        real, y = real.to(device, non_blocking=True), y.to(device, non_blocking=True)
        z = torch.randn(B, args.z_dim, device=device)
        y_fake = torch.randint(0, 10, (B,), device=device)
        with torch.no_grad():
            fake = G(z, y_fake)
        loss = d_loss(D(real, y), D(fake, y_fake))
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        y_fake = torch.randint(0, 10, (B,), device=device)
        loss = g_loss(D(G(torch.randn(B, args.z_dim, device=device), y_fake), y_fake))
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if step >= args.warmup:
            done += B
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def project_loop(args, device: torch.device) -> float:
    """Images per second of the project's Trainer (one epoch over exactly the measured steps).

    A first, short Trainer run of `warmup` steps takes the one-time costs (kernel selection, allocator
    growth) that the baseline also leaves out of its timing; the second run is the measured one.
    """
    records = []
    for steps in (args.warmup, args.steps):
        with tempfile.TemporaryDirectory() as tmp:
            opts = TrainOptions(
                out=tmp, epochs=1, batch_size=args.batch_size, z_dim=args.z_dim, channels=args.channels,
                limit=args.batch_size * steps, device=str(device), progress=False, ema=0.999, aux_weight=0.0,
            )  # fmt: skip
            records.append(Trainer(opts).train())
    return records[-1]["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=60, help="measured steps per loop")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps before each loop is timed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=TrainOptions.channels)
    parser.add_argument("--z-dim", type=int, default=TrainOptions.z_dim)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the baseline")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    split = load_split("train")
    ours = project_loop(args, device)
    baseline = dataloader_loop(args, device, split)
    result = {
        "benchmark": "train_throughput",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "channels": args.channels,
        "steps": args.steps,
        "dataloader_workers": args.workers,
        "project_images_per_s": round(ours, 1),
        "dataloader_images_per_s": round(baseline, 1),
        "speedup": round(ours / baseline, 3),
    }
    print(json.dumps(result, indent=2))
    out = args.out or Path(__file__).parent / "results" / f"train_throughput-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
