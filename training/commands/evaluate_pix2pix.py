"""`evaluate-pix2pix`: measure a sketch-to-garment translator on test-set pairs, per sketch operator."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from models import WEIGHTS_DIR, CheckpointError, update_metrics
from training.data import DATASETS, DataError
from training.evaluation import write_reports
from training.pix2pix import evaluate_translator, headline, render_markdown
from training.sketch import HELD_OUT, OPERATORS, TRAIN_OPERATOR

NAME = "evaluate-pix2pix"
HELP = (
    "measure a pix2pix generator on test-set sketches by the training operator and by held-out ones: L1, SSIM, "
    "the reference classifier's accuracy, FID; writes OUT (JSON) and the markdown beside it"
)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=str(WEIGHTS_DIR / "pix2pix"), metavar="DIR", help="the generator checkpoint")
    p.add_argument("--out", default="pix2pix-report.json", metavar="FILE", help="JSON report; .md beside it")
    p.add_argument(
        "--operators",
        nargs="+",
        choices=list(OPERATORS),
        default=[TRAIN_OPERATOR, *HELD_OUT],
        metavar="NAME",
        help=f"sketch operators (default: {TRAIN_OPERATOR} {' '.join(HELD_OUT)})",
    )
    p.add_argument("--classifier", default=str(WEIGHTS_DIR / "classifier"), metavar="DIR")
    p.add_argument("--record", action="store_true", help="write the headline figures into the model's config.json")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N test images")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, metavar="T", help="torch CPU threads (0: torch's choice)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = evaluate_translator(
            args.model,
            operators=tuple(args.operators),
            classifier=args.classifier,
            dataset=args.dataset,
            data_dir=args.data_dir,
            limit=args.limit,
            device=args.device,
        )
        out, markdown = write_reports(report, args.out, render_markdown(report))
    except (DataError, CheckpointError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    if args.record:
        update_metrics(args.model, {"evaluation": headline(report)})
        log.info("recorded in %s", Path(args.model) / "config.json")
    log.info("wrote %s and %s", out, markdown)
    return 0
