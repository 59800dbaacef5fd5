"""`ensemble-detector`: join trained detectors into one, recalibrated and evaluated like a detector run."""

from __future__ import annotations

import argparse

from training.commands.train_detector import add_holdout_argument, export
from training.ensemble import EnsembleOptions, build_ensemble

NAME = "ensemble-detector"
HELP = (
    "join trained detectors (sharing one validation split) into an ensemble that averages their logits; "
    "calibrates it and exports RUN_DIR/detector with its test figures"
)
_D = EnsembleOptions(out="")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="RUN_DIR", required=True, help="run directory to create")
    p.add_argument(
        "--member",
        metavar="DETECTOR_DIR",
        action="append",
        default=[],
        required=True,
        help="detector checkpoint to join (repeatable, at least two, all with the same validation split)",
    )
    p.add_argument(
        "--generator",
        metavar="DIR",
        action="append",
        default=[],
        required=True,
        help="generator whose fakes calibrate the ensemble and give its 'seen' test figures, as for train-detector "
        "(repeatable; a DIR given twice draws two shares)",
    )
    add_holdout_argument(p)
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--test-samples", type=int, default=_D.test_samples, help="real test images and fakes per generator")
    p.add_argument("--device", default=_D.device, help="auto (CUDA when present), cpu, cuda or cuda:N")


def run(args: argparse.Namespace) -> int:
    opts = EnsembleOptions(
        out=args.out,
        members=list(args.member),
        generators=list(args.generator),
        holdout_generators=list(args.holdout_generator),
        data_dir=args.data_dir,
        test_samples=args.test_samples,
        device=args.device,
    )
    return export(build_ensemble, opts, args.out)
