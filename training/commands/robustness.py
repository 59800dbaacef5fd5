"""`robustness`: detectors' figures under every transformation of the suite, source by source."""

from __future__ import annotations

import argparse
import logging
import time

from models import CheckpointError, update_metrics
from training.data import DATASETS, DataError
from training.detector import draw_test_reals
from training.device import resolve_device
from training.evaluation import stream_seed
from training.fakes import BankError, open_source
from training.robustness import Judge, headline, robustness_report, write_report
from training.transforms import ALL, HELD_OUT, SUITE

NAME = "robustness"
HELP = (
    "judge real test images and each fake source's fakes after every transformation of the suite (and the "
    "held-out kinds): accuracy on reals and per source, ROC AUC, TPR at 1%% FPR, ECE; writes OUT.json and OUT.md"
)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", metavar="DIR", action="append", required=True, help="detector checkpoint (repeatable)")
    p.add_argument("--generator", metavar="DIR", action="append", default=[], help="generator checkpoint (repeatable)")
    p.add_argument("--bank", metavar="NPZ", action="append", default=[], help="fake bank of test fakes (repeatable)")
    p.add_argument("--samples", type=int, default=2000, help="real test images, and fakes per source (default 2000)")
    p.add_argument(
        "--transforms",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help=f"transformations: all (default), suite, held-out, or names among: {' '.join(ALL)}",
    )
    p.add_argument("--unlabelled", action="store_true", help="withhold the labels (default: given, as /classify)")
    p.add_argument("--seed", type=int, default=0, help="seeds the images drawn and the transformations' randomness")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument(
        "--record",
        action="store_true",
        help="also write the first detector's headline figures into its config.json (metrics.robustness)",
    )
    p.add_argument("--out", required=True, metavar="REPORT.json", help="report to write (and REPORT.md beside it)")


def pick_transforms(names: list[str]) -> list:
    """The named transformations, in the suite's order; 'all', 'suite' and 'held-out' name groups."""
    groups = {"all": list(ALL), "suite": list(SUITE), "held-out": list(HELD_OUT)}
    wanted: list[str] = []
    for name in names:
        for n in groups.get(name, [name]):
            if n not in ALL:
                raise ValueError(f"unknown transformation {n!r}; known: all, suite, held-out, {', '.join(ALL)}")
            if n not in wanted:
                wanted.append(n)
    return [ALL[n] for n in wanted]


def zip_names(sources):
    """(name, source) pairs: each source's family, numbered when a family appears more than once."""
    seen: dict[str, int] = {}
    for s in sources:
        seen[s.family] = seen.get(s.family, 0) + 1
        yield (s.family if seen[s.family] == 1 else f"{s.family}#{seen[s.family]}"), s


def run(args: argparse.Namespace) -> int:
    try:
        started = time.perf_counter()
        if args.samples < 10:
            raise ValueError("--samples must be at least 10")
        if not args.generator and not args.bank:
            raise ValueError("give at least one --generator DIR or --bank NPZ to draw fakes from")
        transforms = pick_transforms(args.transforms)
        device = resolve_device(args.device)
        judges = [Judge.load(path, device, labelled=not args.unlabelled) for path in args.detector]
        real = draw_test_reals(args.samples, args.seed, "robustness-real", args.dataset, args.data_dir)
        sources = dict(zip_names(open_source(p, device) for p in [*args.generator, *args.bank]))
        fakes = {
            name: s.for_labels(real.labels, stream_seed(args.seed, f"robustness-fakes:{s.path}"))
            for name, s in sources.items()
        }
        report = robustness_report(
            judges,
            (real.images, real.labels),
            fakes,
            transforms,
            seed=args.seed,
            device=device,
        )
        report["paths"] = {name: s.path for name, s in sources.items()}
        report["seconds"] = time.perf_counter() - started
        json_path, md_path = write_report(report, args.out)
        if args.record:
            update_metrics(args.detector[0], {"robustness": {"headline": headline(report, args.detector[0])}})
    except (DataError, CheckpointError, BankError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    log.info("wrote %s and %s in %.0f s", json_path, md_path, report["seconds"])
    print(md_path.read_text())
    return 0
