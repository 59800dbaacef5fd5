"""`holdout-families`: one detector per generator family left out of training, judged on that family."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models import CheckpointError
from training.commands import train_detector
from training.data import DataError
from training.fakes import BankError
from training.holdout import HOLDOUT_TRANSFORMS, leave_one_out, markdown
from training.transforms import ALL

NAME = "holdout-families"
HELP = (
    "leave each generator family out of a detector's training in turn (the train-detector options apply to "
    "every run) and judge it on that family's test fakes: OUT/holdout.json and OUT/holdout.md"
)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    train_detector.add_arguments(p)
    p.add_argument(
        "--test",
        metavar="FAMILY=PATH",
        action="append",
        default=[],
        required=True,
        help="a family's test fakes (a test bank, or a generator directory); repeatable, one per family",
    )
    p.add_argument("--families", nargs="+", metavar="FAMILY", help="hold out only these (default: every family)")
    p.add_argument(
        "--transforms",
        nargs="+",
        default=list(HOLDOUT_TRANSFORMS),
        choices=list(ALL),
        metavar="NAME",
        help=f"transformations the held-out family is judged under (default: {' '.join(HOLDOUT_TRANSFORMS)})",
    )


def parse_tests(pairs: list[str]) -> dict[str, str]:
    tests = {}
    for pair in pairs:
        family, sep, path = pair.partition("=")
        if not sep or not family or not path:
            raise ValueError(f"--test takes FAMILY=PATH (got {pair!r})")
        tests[family] = path
    return tests


def run(args: argparse.Namespace) -> int:
    try:
        opts = train_detector.options_from_args(args)
        results = leave_one_out(
            opts,
            parse_tests(args.test),
            families=args.families,
            samples=opts.test_samples,
            transforms=args.transforms,
        )
    except (DataError, CheckpointError, BankError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    table = markdown(results)
    (Path(args.out) / "holdout.md").write_text(table)
    print(table)
    return 0
