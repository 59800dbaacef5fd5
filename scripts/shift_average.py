"""Does averaging a detector's logits over ±1-pixel shifted copies of an image help after a JPEG round trip?

The real test images and one generator's fakes are drawn exactly as ``scripts/compare_detectors.py`` draws
them (same seed, same streams, so the "1 copy" row is that report's JPEG-75 figure), sent through a JPEG
round trip at quality 75, and judged as uploaded, by each single shifted copy, and by the mean logit over
the image and its 4 edge neighbours (5 copies) or all 8 neighbours (9 copies). Shifts fill with black, as
training's shift augmentation does.

    python scripts/shift_average.py --detector models/weights/detector --generator models/weights/generator \\
        --out docs/reports/shift_average.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import header, write  # noqa: E402
from models import DETECTORS, Generator, load_model, read_temperature  # noqa: E402
from training.detector import (  # noqa: E402
    UNKNOWN,
    detection_figures,
    draw_fakes,
    draw_test_reals,
    jpeg_all,
    predict_logits,
    shift,
)
from training.evaluation import stream_seed  # noqa: E402

EDGES = [(0, 1), (0, -1), (1, 0), (-1, 0)]
CORNERS = [(1, 1), (1, -1), (-1, 1), (-1, -1)]


def shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """uint8 (N, 28, 28) images, each moved by (dx, dy) pixels."""
    n = len(images)
    return torch.from_numpy(shift(images.numpy(), np.full(n, dx), np.full(n, dy)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", required=True, help="detector checkpoint")
    parser.add_argument("--generator", required=True, help="generator checkpoint")
    parser.add_argument("--samples", type=int, default=2000, help="real test images, and as many fakes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()

    device = torch.device("cpu")
    real = draw_test_reals(args.samples, args.seed, "compare-real")
    g = load_model(args.generator, expected=Generator, device=device)
    fake, fake_labels = draw_fakes(g, real.labels, stream_seed(args.seed, f"compare:{args.generator}"), device)
    detector = load_model(args.detector, expected=DETECTORS, device=device)
    temperature = read_temperature(detector.checkpoint, args.detector, default=1.0)
    images = {"real": jpeg_all(real.images), "fake": jpeg_all(fake)}
    labels = {"real": real.labels, "fake": fake_labels}

    rows: dict[str, dict[str, dict]] = {}
    for mode in ("labelled", "unlabelled"):
        logits: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        for dx, dy in [(0, 0), *EDGES, *CORNERS]:
            logits[(dx, dy)] = {
                kind: predict_logits(
                    detector,
                    shifted(images[kind], dx, dy),
                    labels[kind] if mode == "labelled" else torch.full_like(labels[kind], UNKNOWN),
                    device,
                )
                for kind in ("real", "fake")
            }
        groups = {
            "1 copy (as uploaded)": [(0, 0)],
            "5 copies (edges)": [(0, 0), *EDGES],
            "9 copies (all)": [(0, 0), *EDGES, *CORNERS],
            **{f"shifted by ({dx}, {dy}) alone": [(dx, dy)] for dx, dy in EDGES + CORNERS},
        }
        for name, shifts in groups.items():
            mean = {kind: torch.stack([logits[s][kind] for s in shifts]).mean(0) for kind in ("real", "fake")}
            fig = detection_figures(mean["real"], mean["fake"], temperature)
            rows.setdefault(name, {})[mode] = fig
    report = {
        **header(" ".join(["python", "scripts/shift_average.py", *sys.argv[1:]])),
        "detector": args.detector,
        "generator": args.generator,
        "samples": args.samples,
        "jpeg_quality": 75,
        "figures": rows,
    }
    for name, modes in rows.items():
        cells = " / ".join(f"{modes[m]['accuracy'] * 100:.2f}%" for m in ("labelled", "unlabelled"))
        print(f"{name}: JPEG-75 accuracy {cells} (labelled / unlabelled)")
    if args.out:
        write(args.out, report)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
