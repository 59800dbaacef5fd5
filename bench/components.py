"""Cost of two pieces of a /generate request, each against what it replaced, in one process.

- PNG encoding of a served 28x28 image: Pillow's ``Image.save`` against ``models.image_files.encode_png``
  (microseconds an image, and bytes).
- The generator's output layer (32 channels to 1, 3x3): ``nn.Conv2d`` against ``TapSumConv2d``, alone
  and as part of the whole shipped generator, at batch sizes 1 and 32 (ms an image, one torch thread,
  the service's malloc tuning). And what the faster layer changes in the served images: of
  ``--images`` images (seeds 0.., classes in turn, batches of 32), how many have a pixel that differs
  after quantization, and by how many grey levels at most.

Each figure is the best of ``--rounds`` timed rounds, the variants alternating within a round.

    python bench/components.py --out bench/results/components.json
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from bench.allocator import TUNED  # noqa: E402
from bench.record import header, write  # noqa: E402
from models.image_files import encode_png  # noqa: E402


def pillow_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def best_per_call(fns: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, float]:
    """Seconds per call of each function: the best round, the functions alternating within a round."""
    for fn in fns.values():
        for _ in range(max(3, calls // 10)):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    return best


def plain_out_layer(generator: nn.Module) -> nn.Module:
    """A copy of the generator whose output layer is nn.Conv2d with the same weights."""
    copy = models.load_model(models.WEIGHTS_DIR / "generator").eval()
    plain = nn.Conv2d(copy.out.in_channels, copy.out.out_channels, copy.out.kernel_size, padding=copy.out.padding)
    plain.load_state_dict(generator.out.state_dict())
    copy.out = plain.eval()
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=5000, help="images compared between the two output layers")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    if any(os.environ.get(name) != value for name, value in TUNED.items()):
        # Measure with glibc's thresholds as the service's image sets them (read when a process starts).
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | TUNED)
    torch.set_num_threads(1)
    generator = models.load_model(models.WEIGHTS_DIR / "generator").eval()
    reference = plain_out_layer(generator)
    results: dict[str, object] = {}

    with torch.inference_mode():
        pixels = models.quantize(generator(models.noise([0], generator.z_dim), torch.tensor([3])))[0, 0].numpy()
        seconds = best_per_call(
            {"pillow": lambda: pillow_png(pixels), "encode_png": lambda: encode_png(pixels)}, 2000, args.rounds
        )
        results["png_28x28"] = {
            "us_per_image": {name: round(s * 1e6, 1) for name, s in seconds.items()},
            "bytes": {"pillow": len(pillow_png(pixels)), "encode_png": len(encode_png(pixels))},
        }
        print(f"PNG 28x28: Pillow {seconds['pillow'] * 1e6:.1f} us, encode_png {seconds['encode_png'] * 1e6:.1f} us")

        layers = {}
        for batch in (1, 32):
            z, y = models.noise(range(batch), generator.z_dim), torch.arange(batch) % 10
            features = torch.relu(
                torch.randn(batch, generator.out.in_channels, 28, 28, generator=torch.Generator().manual_seed(0))
            )
            calls = 3000 // batch
            seconds = best_per_call(
                {
                    "out_layer_conv2d": lambda f=features: reference.out(f),
                    "out_layer_tapsum": lambda f=features: generator.out(f),
                    "generator_conv2d": lambda z=z, y=y: reference(z, y),
                    "generator_tapsum": lambda z=z, y=y: generator(z, y),
                },
                calls,
                args.rounds,
            )
            layers[f"batch_{batch}"] = {name: round(s / batch * 1e3, 4) for name, s in seconds.items()}
            print(f"batch {batch}, ms an image: " + ", ".join(f"{k} {v}" for k, v in layers[f"batch_{batch}"].items()))
        results["generator_ms_per_image"] = layers

        seeds = list(range(args.images))
        labels = torch.tensor([seed % models.NUM_CLASSES for seed in seeds])
        z = models.noise(seeds, generator.z_dim)
        changed_images = changed_pixels = worst = 0
        for start in range(0, len(seeds), 32):
            new = models.quantize(generator(z[start : start + 32], labels[start : start + 32])).int()
            old = models.quantize(reference(z[start : start + 32], labels[start : start + 32])).int()
            diff = (new - old).abs()
            changed_images += int((diff.flatten(1).amax(1) > 0).sum())
            changed_pixels += int((diff > 0).sum())
            worst = max(worst, int(diff.max()))
        results["served_images_changed"] = {
            "images": args.images,
            "images_with_a_changed_pixel": changed_images,
            "pixels_changed": changed_pixels,
            "largest_change_grey_levels": worst,
        }
        print(
            f"of {args.images} images, {changed_images} have a changed pixel ({changed_pixels} pixels, at most {worst} grey levels)"
        )

    if args.out:
        record = header("python bench/components.py", torch=torch.__version__, torch_threads=1)
        print(f"wrote {write(args.out, {**record, **results})}")


if __name__ == "__main__":
    main()
