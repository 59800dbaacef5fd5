"""How a detector's accuracy falls with the JPEG quality of the images it judges.

The real test images and one generator's fakes are drawn exactly as ``scripts/compare_detectors.py`` draws
them (same seed, same streams, so the "clean" and "75" rows are that report's figures), then judged as drawn
and after one grayscale JPEG round trip at each quality asked for, labels given and withheld. Real uploads
arrive at every quality; the issue's target is set at 75, so this shows how far from that edge a detector is.

    python scripts/jpeg_quality.py --detector models/weights/detector --generator models/weights/generator \\
        --out docs/reports/jpeg_quality.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import header, write  # noqa: E402
from models import DETECTORS, Generator, load_model, read_temperature  # noqa: E402
from training.detector import detection_figures, draw_fakes, draw_test_reals, jpeg_all, predict_logits  # noqa: E402
from training.evaluation import stream_seed  # noqa: E402

QUALITIES = (95, 90, 85, 80, 75, 70, 65, 60, 50)


def quality(text: str) -> int:
    q = int(text)
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"a JPEG quality is 1..100, not {q}")
    return q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", required=True, help="detector checkpoint (repeatable)")
    parser.add_argument("--generator", required=True, help="generator checkpoint")
    parser.add_argument("--quality", type=quality, action="append", help=f"JPEG quality (repeatable; {QUALITIES})")
    parser.add_argument("--samples", type=int, default=2000, help="real test images, and as many fakes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file to write (a Markdown table goes beside it)")
    args = parser.parse_args()
    qualities = args.quality or list(QUALITIES)

    device = torch.device("cpu")
    real = draw_test_reals(args.samples, args.seed, "compare-real")
    g = load_model(args.generator, expected=Generator, device=device)
    fake, fake_labels = draw_fakes(g, real.labels, stream_seed(args.seed, f"compare:{args.generator}"), device)
    versions = {"clean": (real.images, fake)}
    versions.update({str(q): (jpeg_all(real.images, q), jpeg_all(fake, q)) for q in qualities})

    figures: dict[str, dict[str, dict[str, dict]]] = {}
    for path in args.detector:
        detector = load_model(path, expected=DETECTORS, device=device)
        temperature = read_temperature(detector.checkpoint, path, default=1.0)
        rows = figures[path] = {}
        for version, (real_images, fake_images) in versions.items():
            rows[version] = {
                mode: detection_figures(
                    predict_logits(detector, real_images, real.labels if mode == "labelled" else None, device),
                    predict_logits(detector, fake_images, fake_labels if mode == "labelled" else None, device),
                    temperature,
                )
                for mode in ("labelled", "unlabelled")
            }
            cells = " / ".join(f"{rows[version][m]['accuracy'] * 100:.2f}%" for m in ("labelled", "unlabelled"))
            print(f"{path} {version}: accuracy {cells} (labelled / unlabelled)", flush=True)

    report = {
        **header(" ".join(["python", "scripts/jpeg_quality.py", *sys.argv[1:]])),
        "generator": args.generator,
        "samples": args.samples,
        "figures": figures,
    }
    if args.out:
        write(args.out, report)
        args.out.with_suffix(".md").write_text(markdown(report))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def markdown(report: dict) -> str:
    """One row per quality, one column per detector: accuracy labelled / unlabelled."""
    detectors = list(report["figures"])
    versions = list(next(iter(report["figures"].values())))
    lines = [
        f"Accuracy (labelled / unlabelled) on {report['samples']:,} real test images against as many fakes of "
        f"`{report['generator']}`, as drawn and after one JPEG round trip (`{report['command']}`).",
        "",
        "| JPEG quality | " + " | ".join(f"`{d}`" for d in detectors) + " |",
        "| --- |" + " ---: |" * len(detectors),
    ]
    for version in versions:
        cells = [
            " / ".join(f"{report['figures'][d][version][m]['accuracy'] * 100:.2f}%" for m in ("labelled", "unlabelled"))
            for d in detectors
        ]
        lines.append(f"| {version} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
