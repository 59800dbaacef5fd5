"""Detection figures of several detectors on the same images: real test images against fresh fakes of each
generator, clean and after a JPEG round trip at quality 75, labels given and withheld.

The real images and each generator's fakes are drawn once, exactly as ``train-detector`` draws its test
figures (balanced classes, the fakes carrying the reals' labels, quantized as served), and every detector
judges the same ones; so two detectors trained with different generator sets (and so different "seen" and
"unseen" lists) can be compared generator by generator. Each detector's temperature is its checkpoint's.
A GAN discriminator (``--discriminator``) can stand beside them: it needs the label, so it is judged with
labels given, on the conditional generators only.

    python scripts/compare_detectors.py --detector runs/detector-jpeg24/detector \\
        --detector runs/detector-jpeg24-e1/detector --generator runs/gan-aux/generator ... \\
        --out docs/reports/detectors.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import header, write  # noqa: E402
from models import DETECTORS, Discriminator, Generator, load_model, read_temperature  # noqa: E402
from training.detector import draw_fakes, draw_test_reals, evaluate_detector  # noqa: E402
from training.evaluation import stream_seed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", default=[], help="detector checkpoint (repeatable)")
    parser.add_argument(
        "--discriminator",
        action="append",
        default=[],
        help="GAN discriminator checkpoint, judged labelled (repeatable)",
    )
    parser.add_argument("--generator", action="append", required=True, help="generator checkpoint (repeatable)")
    parser.add_argument("--samples", type=int, default=2000, help="real test images, and fakes per generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file to write (a Markdown table goes beside it)")
    args = parser.parse_args()
    if not args.detector and not args.discriminator:
        parser.error("give at least one --detector or --discriminator")

    device = torch.device("cpu")
    real = draw_test_reals(args.samples, args.seed, "compare-real")
    fakes = {}
    for path in args.generator:
        g = load_model(path, expected=Generator, device=device)
        fakes[path] = draw_fakes(g, real.labels, stream_seed(args.seed, f"compare:{path}"), device)

    report: dict[str, object] = {
        **header(" ".join(["python", "scripts/compare_detectors.py", *sys.argv[1:]])),
        "samples": args.samples,
        "generators": args.generator,
        "detectors": {},
    }
    judges = [(path, DETECTORS) for path in args.detector] + [(path, Discriminator) for path in args.discriminator]
    for path, cls in judges:
        detector = load_model(path, expected=cls, device=device)
        temperature = read_temperature(detector.checkpoint, path, default=1.0)
        figures = evaluate_detector(
            detector,
            real.images,
            real.labels,
            fakes,
            temperature=temperature,
            device=device,
            needs_label=cls is Discriminator and detector.conditional,
        )
        report["detectors"][path] = {"kind": type(detector).__name__, "temperature": temperature, "figures": figures}
        print(f"{path} (temperature {temperature:.3f})")
        for generator, versions in figures.items():
            cells = [
                f"{version}/{mode}: {fig['accuracy'] * 100:.1f}% AUC {fig['roc_auc']:.4f} ECE {fig['ece']:.3f}"
                for version, modes in versions.items()
                for mode, fig in modes.items()
            ]
            print(f"  {generator}: " + "; ".join(cells))

    if args.out:
        write(args.out, report)
        args.out.with_suffix(".md").write_text(markdown(report))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def markdown(report: dict) -> str:
    """One row per generator and detector: accuracy (labelled / unlabelled) clean and after JPEG-75, ECE."""
    lines = [
        f"Real test images against fresh fakes, {report['samples']:,} each, the same images for every detector "
        f"(`{report['command']}`). Accuracy labelled / unlabelled (a discriminator: labelled only); ECE the larger of the "
        "two.",
        "",
        "| generator | detector | clean accuracy | clean ROC AUC | JPEG-75 accuracy | JPEG-75 ROC AUC | JPEG-75 ECE |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    detectors = report["detectors"]
    generators = report["generators"]

    def both(modes: dict, key: str, fmt: str) -> str:
        return " / ".join(format(modes[m][key] * (100 if key == "accuracy" else 1), fmt) for m in modes)

    for generator in generators:
        for path, entry in detectors.items():
            if generator not in entry["figures"]:
                continue  # a discriminator that needs labels, against an unconditional generator
            versions = entry["figures"][generator]
            clean, jpeg = versions["clean"], versions["jpeg75"]
            ece = max(fig["ece"] for fig in jpeg.values())
            lines.append(
                f"| `{generator}` | `{path}` | {both(clean, 'accuracy', '.1f')}% | {both(clean, 'roc_auc', '.4f')} "
                f"| {both(jpeg, 'accuracy', '.1f')}% | {both(jpeg, 'roc_auc', '.4f')} | {ece:.3f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
