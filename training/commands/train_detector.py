"""`train-detector`: train, calibrate and evaluate the real/fake detector against frozen generators."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from models import CheckpointError
from training.data import DATASETS, DataError
from training.detector import DEFAULT_CHANNELS, DetectorOptions, train_detector
from training.transforms import TRAIN_KINDS, AugmentOptions

NAME = "train-detector"
HELP = (
    "train the real/fake detector against fresh fakes of frozen generators; "
    "calibrates it and exports RUN_DIR/detector with its test figures"
)
log = logging.getLogger(__name__)
_D = DetectorOptions(out="")
_A = AugmentOptions()


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = _D
    p.add_argument("--out", metavar="RUN_DIR", required=True, help="run directory to create")
    p.add_argument(
        "--generator",
        metavar="DIR",
        action="append",
        default=[],
        help="generator checkpoint to train against (repeatable; fakes are shared equally among every --generator "
        "and --bank given, so one given twice gets two shares)",
    )
    p.add_argument(
        "--bank",
        metavar="NPZ",
        action="append",
        default=[],
        help="fake bank of another generator family to train against (`python -m training zoo sample`; repeatable)",
    )
    add_holdout_argument(p)
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step, half real and half fake")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (cosine-decayed)")
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=d.warmup_steps,
        metavar="K",
        help="raise the learning rate linearly over the first K steps (default 0); a fine-tuning run (--init) "
        "keeps more of what its detector knew with a few hundred",
    )
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument(
        "--channels",
        type=int,
        default=None,
        help=f"detector width at 28x28 (default {DEFAULT_CHANNELS}; with --init, its own, and a larger one widens it: "
        "the new channels start out changing nothing)",
    )
    p.add_argument(
        "--init",
        metavar="DETECTOR_DIR",
        help="start from this detector checkpoint's weights (fine-tuning; recalibrated at the end)",
    )
    p.add_argument("--label-dropout", type=float, default=d.label_dropout, help="probability a label is withheld")
    p.add_argument(
        "--ema-decay",
        type=float,
        default=d.ema_decay,
        metavar="D",
        help="validate and export a moving average of the weights, updated by factor D every step (e.g. 0.999; "
        "default 0: the trained weights)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=d.dropout,
        metavar="P",
        help="zero this share of the detector's pooled features at every training step (default 0; none when judging)",
    )
    p.add_argument(
        "--mirror-real-p",
        type=float,
        default=d.mirror_real_p,
        metavar="P",
        help="mirror this share of the real training images left to right (never fakes, whose artifacts have a "
        "direction; default 0). Measured to hurt: orientation becomes evidence of real (docs/detector.md)",
    )
    p.add_argument(
        "--mirror-p",
        type=float,
        default=d.mirror_p,
        metavar="P",
        help="mirror this share of the training images left to right, real and fake alike (default 0), so that "
        "orientation is no evidence and a mirrored fake does not pass as real",
    )
    p.add_argument(
        "--val-size", type=int, default=d.val_size, help="real training images held out (plus as many fakes)"
    )
    p.add_argument("--test-samples", type=int, default=d.test_samples, help="real test images and fakes per generator")
    p.add_argument("--eval-every", type=int, default=d.eval_every, metavar="K", help="steps between validations")
    p.add_argument(
        "--augment-p",
        type=float,
        default=_A.p,
        metavar="P",
        help="probability that a training image, real or fake alike, is processed (default %(default)s)",
    )
    p.add_argument(
        "--chain-p",
        type=float,
        default=_A.chain_p,
        metavar="P",
        help="of the processed images, probability of a second operation (default %(default)s)",
    )
    p.add_argument(
        "--augment-kinds",
        nargs="+",
        choices=TRAIN_KINDS,
        default=list(_A.kinds),
        metavar="KIND",
        help=f"kinds of processing drawn from (default all: {' '.join(TRAIN_KINDS)})",
    )
    p.add_argument(
        "--jpeg-quality",
        type=int,
        nargs=2,
        default=list(_A.jpeg_quality),
        metavar=("LO", "HI"),
        help="JPEG qualities drawn uniformly from LO..HI inclusive (default {} {})".format(*_A.jpeg_quality),
    )
    p.add_argument(
        "--blur-sigma",
        type=float,
        nargs=2,
        default=list(_A.blur_sigma),
        metavar=("LO", "HI"),
        help="Gaussian blur sigmas drawn from LO..HI pixels (default {} {})".format(*_A.blur_sigma),
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the validation split, init and test figures")
    p.add_argument(
        "--stream-seed",
        type=int,
        default=None,
        metavar="S",
        help="seeds the training batches, fakes and augmentations (default: --seed); give a continuation (--init), "
        "which must keep --seed, a new one so that it does not draw its predecessor's batches again",
    )
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N training images")
    p.add_argument("--log-every", type=int, default=d.log_every, metavar="K", help="steps between steps.jsonl lines")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def run(args: argparse.Namespace) -> int:
    return export(train_detector, options_from_args(args), args.out)


def options_from_args(args: argparse.Namespace) -> DetectorOptions:
    """The run's options from ``add_arguments``' flags."""
    augment = AugmentOptions(
        p=args.augment_p,
        chain_p=args.chain_p,
        kinds=tuple(args.augment_kinds),
        jpeg_quality=(args.jpeg_quality[0], args.jpeg_quality[1]),
        blur_sigma=(args.blur_sigma[0], args.blur_sigma[1]),
    )
    return DetectorOptions(
        out=args.out,
        generators=[*args.generator, *args.bank],
        holdout_generators=list(args.holdout_generator),
        data_dir=args.data_dir,
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        channels=args.channels,
        init=args.init,
        label_dropout=args.label_dropout,
        ema_decay=args.ema_decay,
        dropout=args.dropout,
        mirror_real_p=args.mirror_real_p,
        mirror_p=args.mirror_p,
        val_size=args.val_size,
        test_samples=args.test_samples,
        eval_every=args.eval_every,
        augment=augment,
        seed=args.seed,
        stream_seed=args.stream_seed,
        device=args.device,
        limit=args.limit,
        log_every=args.log_every,
        progress=not args.no_progress,
    )


def add_holdout_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--holdout-generator",
        metavar="DIR",
        action="append",
        default=[],
        help="generator checkpoint or fake bank the detector never saw, evaluated separately at the end (repeatable)",
    )


def export(build: Callable[[Any], dict[str, Any]], opts: Any, out: str) -> int:
    """Run ``build(opts)``, which exports OUT/detector; its errors are one line and exit status 2."""
    try:
        metrics = build(opts)
    except (DataError, CheckpointError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    log.info(
        "done: %s/detector (temperature %.4f, validation ECE %.4f -> %.4f)",
        out,
        metrics["temperature"],
        metrics["ece_before"],
        metrics["ece_after"],
    )
    return 0
