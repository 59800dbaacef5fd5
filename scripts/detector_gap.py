"""Where a detector's errors come from: real images it trained on against real images it never saw, and
images as uploaded against the same images mirrored.

For each detector, its own real split is drawn again from its checkpoint's training facts (seed,
train_images, val_images; the split ``train-detector`` made), and the share of real images it calls fake is
measured on ``--samples`` of its training images, of its validation images and of the test images; the share
of one generator's fresh fakes it passes as real beside them. Every set is judged clean and after a JPEG round
trip at quality 75, as uploaded and mirrored left to right, labels given. A detector that calls far fewer of
its training reals fake than of reals it never saw has learned those images, not only what makes an image
real; one whose errors jump on mirrored images relies on cues with a direction. Last, the test reals that
each detector calls fake after JPEG are compared: how many every detector gets wrong.

    python scripts/detector_gap.py --detector runs/detector-ft48/detector --generator runs/gan-aux/generator \\
        --out docs/reports/detector_gap.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import header, write  # noqa: E402
from models import DETECTORS, Generator, load_model  # noqa: E402
from training.data import load_split  # noqa: E402
from training.detector import (  # noqa: E402
    EVAL_JPEG_QUALITY,
    draw_fakes,
    draw_test_reals,
    jpeg_all,
    predict_logits,
    split_indices,
)
from training.evaluation import stream_seed  # noqa: E402

VERSIONS = ("clean", f"jpeg{EVAL_JPEG_QUALITY}", "mirrored", f"mirrored+jpeg{EVAL_JPEG_QUALITY}")


def versions(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """uint8 (N, 28, 28) images as uploaded and mirrored, each clean and after one JPEG round trip."""
    mirrored = images.flip(-1).contiguous()
    return dict(zip(VERSIONS, (images, jpeg_all(images), mirrored, jpeg_all(mirrored)), strict=True))


def split_key(detector: torch.nn.Module, path: str) -> tuple[str, int, int, int]:
    """(dataset, train_images, val_images, seed): what draws a detector's real split again."""
    facts = detector.checkpoint.get("training", {})
    missing = [k for k in ("seed", "train_images", "val_images", "dataset") if k not in facts]
    if missing:
        raise SystemExit(f"{path}: config.json training lacks {', '.join(missing)}; cannot draw its split again")
    return facts["dataset"], facts["train_images"], facts["val_images"], facts["seed"]


def draw_real_sets(
    dataset: str, train_images: int, val_images: int, split_seed: int, samples: int, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``samples`` of a split's training reals, of its validation reals, and of the test images."""
    n = train_images + val_images
    split = load_split("train", dataset, None, limit=n)
    train_idx, val_idx = split_indices(n, val_images, split_seed)
    pick = torch.Generator().manual_seed(seed)
    sets = {}
    for name, idx in (("train", train_idx), ("validation", val_idx)):
        idx = idx[torch.randperm(len(idx), generator=pick)[:samples]]
        sets[name] = (split.images[idx], split.labels[idx])
    test = draw_test_reals(samples, seed, "gap-test", dataset)
    sets["test"] = (test.images, test.labels)
    return sets


def judge(
    detector: torch.nn.Module, images: dict[str, torch.Tensor], labels: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Per version (of ``versions``): the detector's verdicts, True for "real" (a positive logit)."""
    cpu = torch.device("cpu")
    return {version: predict_logits(detector, x, labels, cpu) > 0 for version, x in images.items()}


def error_rates(verdicts: dict[str, torch.Tensor], real: bool) -> dict[str, float]:
    """Per version: the share called fake (reals) or passed as real (fakes)."""
    return {version: float((said_real != real).float().mean()) for version, said_real in verdicts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", required=True, help="detector checkpoint (repeatable)")
    parser.add_argument("--generator", required=True, help="generator whose fresh fakes are judged beside the reals")
    parser.add_argument("--samples", type=int, default=2000, help="images per set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    if args.samples < 1:
        parser.error("--samples must be at least 1")

    cpu = torch.device("cpu")
    report: dict[str, object] = {
        **header(" ".join(["python", "scripts/detector_gap.py", *sys.argv[1:]])),
        "samples": args.samples,
        "generator": args.generator,
        "detectors": {},
    }
    # Every version of a set is made once: detectors with the same split share their real sets, and every
    # detector judges the same fakes (carrying the test reals' labels).
    reals: dict[tuple, dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]]] = {}
    fakes: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None
    wrong_on_test: dict[str, set[int]] = {}
    for path in args.detector:
        detector = load_model(path, expected=DETECTORS, device=cpu)
        key = split_key(detector, path)
        if key not in reals:
            sets = draw_real_sets(*key, args.samples, args.seed)
            reals[key] = {name: (versions(x), y) for name, (x, y) in sets.items()}
        if fakes is None:
            test_labels = reals[key]["test"][1]
            g = load_model(args.generator, expected=Generator, device=cpu)
            images, labels = draw_fakes(g, test_labels, stream_seed(args.seed, f"gap:{args.generator}"), cpu)
            fakes = (versions(images), labels)
        verdicts = {f"real {name}": judge(detector, x, y) for name, (x, y) in reals[key].items()}
        rates = {name: error_rates(v, real=True) for name, v in verdicts.items()}
        rates["fake"] = error_rates(judge(detector, *fakes), real=False)
        report["detectors"][path] = rates
        called_fake = ~verdicts["real test"][f"jpeg{EVAL_JPEG_QUALITY}"]
        wrong_on_test[path] = set(torch.nonzero(called_fake).squeeze(1).tolist())
        print(path)
        for name, row in rates.items():
            print(f"  {name:<16} " + "  ".join(f"{v}: {r * 100:.2f}%" for v, r in row.items()))
    shared = set.intersection(*wrong_on_test.values())
    report["test_reals_called_fake_after_jpeg"] = {
        "per_detector": {path: len(w) for path, w in wrong_on_test.items()},
        "by_every_detector": len(shared),
    }
    print(f"test reals called fake after JPEG: {report['test_reals_called_fake_after_jpeg']}")
    if args.out:
        print(f"wrote {write(args.out, report)}")


if __name__ == "__main__":
    main()
