"""`train`: train the (conditional) GAN on Fashion-MNIST and export its checkpoints."""

from __future__ import annotations

import argparse
import logging

from training.commands import start_or_resume
from training.data import DATASETS, DataError
from training.loop import CPU_BATCH, DEFAULT_AUX_WEIGHT, GPU_BATCH, Trainer, TrainOptions

NAME = "train"
HELP = "train the GAN; writes a self-describing run directory (options, stats, grids, GIF, curves, checkpoints)"
log = logging.getLogger(__name__)
_DEFAULTS = TrainOptions(out="")


def _epochs_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epoch numbers, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to create (required unless --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its state.pt (options come from the run)")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--epochs", type=int, default=None, help=f"total epochs (default {d.epochs})")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"default: {CPU_BATCH} on the CPU; {GPU_BATCH} on CUDA, with both learning rates doubled (sqrt rule)",
    )
    p.add_argument("--lr-g", type=float, default=d.lr_g, help="generator Adam learning rate")
    p.add_argument("--lr-d", type=float, default=d.lr_d, help="discriminator Adam learning rate")
    p.add_argument("--z-dim", type=int, default=d.z_dim, help="latent size")
    p.add_argument("--channels", type=int, default=d.channels, help="network width at 28x28 (G and D)")
    p.add_argument("--loss", choices=("hinge", "bce"), default=d.loss)
    p.add_argument("--ema", type=float, default=d.ema, help="decay of G's weight average (0: off, export raw G)")
    p.add_argument(
        "--d-gate",
        type=float,
        default=None,
        metavar="F",
        help="skip D's step when it calls > F of fakes fake",
    )
    p.add_argument("--unconditional", action="store_true", help="train an unconditional DCGAN-style pair")
    p.add_argument(
        "--aux-weight",
        type=float,
        default=None,
        metavar="W",
        help="weight of an auxiliary class loss on D's extra head (AC-GAN style); 0: projection only "
        f"(default {DEFAULT_AUX_WEIGHT}, 0 when unconditional)",
    )
    p.add_argument(
        "--diffaugment",
        default=d.diffaugment,
        metavar="P1,P2",
        help="differentiable augmentation of D's inputs, real and fake: any of translation,cutout,color ('': off)",
    )
    p.add_argument("--r1-gamma", type=float, default=d.r1_gamma, metavar="G", help="R1 penalty weight (0: off)")
    p.add_argument(
        "--ms-weight", type=float, default=d.ms_weight, metavar="W", help="mode-seeking term weight (0: off)"
    )
    p.add_argument(
        "--lr-decay",
        type=float,
        default=d.lr_decay,
        metavar="F",
        help="decay both learning rates linearly to 0 over the last F of the run (0: constant)",
    )
    p.add_argument(
        "--init",
        metavar="DIR",
        help="start from the generator/ and discriminator/ checkpoints in DIR (a run directory, or models/weights)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda or cuda:N (default auto)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N training images")
    p.add_argument("--eval-every", type=int, default=d.eval_every, metavar="K", help="FID and GAN-test every K epochs")
    p.add_argument("--eval-samples-per-class", type=int, default=d.eval_samples_per_class)
    p.add_argument("--classifier", help="reference classifier for --eval-every (default: the shipped one)")
    p.add_argument(
        "--snapshot-epochs",
        type=_epochs_list,
        default=[],
        metavar="E1,E2",
        help="also export generator-epochNNN/",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def run(args: argparse.Namespace) -> int:
    try:
        trainer = start_or_resume(args, Trainer, TrainOptions)
        if trainer is None:
            return 2
        record = trainer.train()
    except (DataError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    log.info("done: %s (epoch %s)", trainer.run_dir, record.get("epoch", trainer.epoch))
    return 0
