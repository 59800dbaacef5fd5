"""`train-pix2pix`: train the sketch-to-garment translator (pix2pix) and export its checkpoints."""

from __future__ import annotations

import argparse
import logging

from models import CheckpointError
from training.commands import start_or_resume
from training.data import DATASETS, DataError
from training.pix2pix import Pix2PixOptions, Pix2PixTrainer

NAME = "train-pix2pix"
HELP = (
    "train the sketch-to-garment translator (U-Net + patch discriminator) on sketches made on the fly; "
    "writes a self-describing run directory with RUN/pix2pix and RUN/pix2pix-discriminator"
)
log = logging.getLogger(__name__)
_DEFAULTS = Pix2PixOptions(out="")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to create (required unless --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its state.pt (options come from the run)")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--epochs", type=int, default=None, help=f"total epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr-g", type=float, default=d.lr_g, help="generator Adam learning rate")
    p.add_argument("--lr-d", type=float, default=d.lr_d, help="discriminator Adam learning rate")
    p.add_argument(
        "--l1-weight",
        type=float,
        default=d.l1_weight,
        metavar="LAMBDA",
        help=f"weight of the L1 term in G's loss (default {d.l1_weight:g}; pix2pix's is 100)",
    )
    p.add_argument("--loss", choices=("bce", "hinge"), default=d.loss, help="adversarial loss (default: pix2pix's bce)")
    p.add_argument("--channels", type=int, default=d.channels, help="generator width at 14x14")
    p.add_argument("--d-channels", type=int, default=d.d_channels, help="discriminator width at 14x14")
    p.add_argument("--dropout", type=float, default=d.dropout, help="generator dropout in training (its noise)")
    p.add_argument("--no-augment", action="store_true", help="clean Sobel sketches, without the augmentations")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda or cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=d.threads, metavar="T", help="torch CPU threads (0: torch's choice)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N training images")
    p.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        metavar="K",
        help="L1, SSIM and classifier accuracy on test pairs every K epochs (0: never)",
    )
    p.add_argument("--eval-images", type=int, default=d.eval_images, metavar="N", help="test pairs for --eval-every")
    p.add_argument("--classifier", help="reference classifier for --eval-every (default: the shipped one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def run(args: argparse.Namespace) -> int:
    try:
        trainer = start_or_resume(args, Pix2PixTrainer, Pix2PixOptions, augment=not args.no_augment)
        if trainer is None:
            return 2
        record = trainer.train()
    except (DataError, CheckpointError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    log.info("done: %s (epoch %s)", trainer.run_dir, record.get("epoch", trainer.epoch))
    return 0
