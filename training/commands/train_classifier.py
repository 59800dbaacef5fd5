"""`train-classifier`: train the reference classifier that every image-quality figure is measured with."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from models import WEIGHTS_DIR, save_model
from training.data import DATASETS, DataError, load_split
from training.device import resolve_device
from training.metrics.gan_train import REFERENCE_RECIPE, Recipe, accuracy_on, fit_classifier

NAME = "train-classifier"
HELP = "train the reference classifier (FID feature space, GAN-test) and save it with its test accuracy"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    r = REFERENCE_RECIPE
    p.add_argument(
        "--out",
        default=str(WEIGHTS_DIR / "classifier"),
        metavar="DIR",
        help="checkpoint directory to write (default: the shipped models/weights/classifier)",
    )
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=r.epochs)
    p.add_argument("--batch-size", type=int, default=r.batch_size)
    p.add_argument("--lr", type=float, default=r.lr, help="peak learning rate (linear warm-up, then cosine decay)")
    p.add_argument("--weight-decay", type=float, default=r.weight_decay)
    p.add_argument("--channels", type=int, default=r.channels, help="network width at 28x28")
    p.add_argument("--feature-dim", type=int, default=r.feature_dim, help="penultimate (FID feature) width")
    p.add_argument("--dropout", type=float, default=r.dropout)
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--shift", type=int, default=r.shift, help="random translation in pixels (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N training images")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def run(args: argparse.Namespace) -> int:
    from training.loop import code_version  # the git commit, as the GAN's checkpoints record it

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = Recipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        flip=not args.no_flip,
        shift=args.shift,
        channels=args.channels,
        feature_dim=args.feature_dim,
        dropout=args.dropout,
    )
    try:
        if recipe.epochs < 1 or recipe.batch_size < 2:
            raise ValueError("--epochs must be at least 1 and --batch-size at least 2")
        device = resolve_device(args.device)
        train = load_split("train", args.dataset, args.data_dir, limit=args.limit)
        test = load_split("test", args.dataset, args.data_dir)
    except (DataError, ValueError) as exc:
        log.error("%s", exc)
        return 2

    # Train on the training split only; the test split is looked at once, at the end.
    log.info("training the classifier on %d images for %d epochs on %s", len(train), recipe.epochs, device)
    started = time.perf_counter()
    losses: list[float] = []

    def on_epoch(epoch: int, loss: float) -> None:
        losses.append(loss)
        log.info("epoch %d/%d: training loss %.4f", epoch, recipe.epochs, loss)

    model = fit_classifier(
        train.images,
        train.labels,
        recipe,
        seed=args.seed,
        device=device,
        progress=not args.no_progress,
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - started

    # Measure on the real test set.
    acc = accuracy_on(model, test, device=device)
    train_acc = accuracy_on(model, train, device=device)
    log.info("test accuracy %.4f (train %.4f) after %.0f s", acc.overall, train_acc.overall, seconds)
    out = Path(args.out)
    save_model(
        model,
        out,
        training={
            "dataset": args.dataset,
            "train_images": len(train),
            "recipe": recipe.to_json(),
            "optimizer": "AdamW, linear warm-up over 20% of the steps then cosine decay to 0, cross-entropy",
            "epoch_losses": losses,
            "seed": args.seed,
            "device": str(device),
            "seconds": round(seconds, 1),
            "threads": torch.get_num_threads(),
            "code_version": code_version(),
            "torch": torch.__version__,
        },
        metrics={
            "test_accuracy": acc.overall,
            "test_images": len(test),
            "test_accuracy_per_class": acc.to_json()["per_class"],
            "train_accuracy": train_acc.overall,
        },
    )
    print(f"{out}: test accuracy {acc.overall:.4f} on {len(test)} images ({seconds:.0f} s of training)")
    return 0
