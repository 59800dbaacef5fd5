"""`zoo`: train generators of other families (train), draw fake banks from them (sample), or rebuild it all (all)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from models import NUM_CLASSES, WEIGHTS_DIR, CheckpointError, Classifier, load_model, to_float
from training.data import DataError
from training.metrics.gan_test import class_accuracy
from training.zoo import FAMILIES, ZooError, ZooOptions, load_bank, sample_bank, save_bank, train_family
from training.zoo.common import MODEL_DIR

NAME = "zoo"
HELP = "a zoo of generator families (upsample-gan, cvae, ddpm, ae-launder, pix2pix) and their fake banks"
log = logging.getLogger(__name__)

# What `zoo all` builds: (seed, {split: bank size}). Seed 0 is the detector's training instance,
# seed 1 a separately trained instance that only test banks come from.
ALL_PLAN = ((0, {"train": 10_000, "test": 2_000}), (1, {"test": 2_000}))


def _arch_item(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=None, help="time budget of the loop (default: the family's)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the family's)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the family's")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the family's)")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N training images")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, metavar="T", help="torch CPU threads (0: torch's choice)")
    p.add_argument(
        "--arch",
        type=_arch_item,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the family's model config (VALUE as JSON, else a string), e.g. channels=16",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    families = ", ".join(
        f"{name} ({f.defaults['steps']} steps, {f.defaults['minutes']:g} min)" for name, f in FAMILIES.items()
    )

    t = sub.add_parser("train", help="train one family into a run directory", description=f"families: {families}")
    t.add_argument("--family", required=True, choices=list(FAMILIES))
    t.add_argument("--out", required=True, metavar="DIR", help="run directory (the model goes to DIR/model)")
    _add_train_options(t)
    t.set_defaults(_zoo=_train)

    s = sub.add_parser("sample", help="write a fake bank (npz: images, labels, meta) from a zoo model")
    s.add_argument("--model", required=True, metavar="DIR", help="a zoo model directory (RUN_DIR/model)")
    s.add_argument("--n", type=int, required=True, help="number of images (labels balanced over the classes)")
    s.add_argument("--out", required=True, metavar="BANK.npz")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", choices=("train", "test"), default="train", help="the real split the bank goes with")
    s.add_argument("--data-dir", help="where the real images are (ae-launder, pix2pix)")
    s.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    s.add_argument("--threads", type=int, default=0, metavar="T", help="torch CPU threads (0: torch's choice)")
    s.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the family's)")
    s.set_defaults(_zoo=_sample)

    g = sub.add_parser(
        "gan-test",
        help="the reference classifier's accuracy on banks against their labels (GAN-test), as JSON on stdout",
    )
    g.add_argument("banks", nargs="+", metavar="BANK.npz")
    g.add_argument("--classifier", default=str(WEIGHTS_DIR / "classifier"), metavar="DIR")
    g.add_argument("--threads", type=int, default=0, metavar="T", help="torch CPU threads (0: torch's choice)")
    g.set_defaults(_zoo=_gan_test)

    a = sub.add_parser(
        "all",
        help="train every family (seeds 0 and 1) and write their banks into one directory",
        description="DIR/<family>-s0/ with bank-train.npz (10,000) and bank-test.npz (2,000); "
        "DIR/<family>-s1/ with bank-test.npz (2,000). Finished runs and banks are kept.",
    )
    a.add_argument("--out", required=True, metavar="DIR")
    a.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    a.add_argument("--seeds", nargs="+", type=int, choices=(0, 1), default=[0, 1])
    a.add_argument(
        "--bank-sizes",
        nargs=2,
        type=int,
        default=[ALL_PLAN[0][1]["train"], ALL_PLAN[0][1]["test"]],
        metavar=("TRAIN", "TEST"),
        help="images per train bank and per test bank (default %(default)s)",
    )
    _add_train_options(a)
    a.set_defaults(_zoo=_all)


def _options(args: argparse.Namespace, family: str, out: Path, seed: int) -> ZooOptions:
    return ZooOptions(
        family=family,
        out=str(out),
        seed=seed,
        minutes=args.minutes,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        data_dir=args.data_dir,
        limit=args.limit,
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress,
        arch=dict(args.arch),
    )


def _train(args: argparse.Namespace) -> None:
    model_dir = train_family(args.family, _options(args, args.family, Path(args.out), args.seed))
    log.info("done: %s", model_dir)


def _write_bank(model: Path, n: int, out: Path, seed: int, split: str, data_dir, device: str, batch_size=None) -> None:
    images, labels, meta = sample_bank(model, n, seed, split, data_dir, device=device, batch_size=batch_size)
    save_bank(out, images, labels, meta)
    log.info("bank: %s (%d %s images, split %s)", out, n, meta["family"], split)


def _sample(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    _write_bank(
        Path(args.model), args.n, Path(args.out), args.seed, args.split, args.data_dir, args.device, args.batch_size
    )


@torch.no_grad()
def _gan_test(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = load_model(args.classifier, expected=Classifier)
    report = {}
    for path in args.banks:
        images, labels, meta = load_bank(path)
        logits = torch.cat(
            [classifier(to_float(images[i : i + 1000]).unsqueeze(1)) for i in range(0, len(images), 1000)]
        )
        accuracy = class_accuracy(logits.argmax(dim=1), labels, NUM_CLASSES)
        report[str(path)] = {"family": meta["family"], "count": len(images), "gan_test": accuracy.to_json()}
        log.info("%s: GAN-test %.2f%% (%s, %d images)", path, 100 * accuracy.overall, meta["family"], len(images))
    print(json.dumps(report, indent=2))


def _all(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.out)
    for seed, banks in ALL_PLAN:
        if seed not in args.seeds:
            continue
        for family in args.families:
            run_dir = root / f"{family}-s{seed}"
            model = run_dir / MODEL_DIR
            if (model / "model.safetensors").is_file():
                log.info("%s: trained already, kept", run_dir)
            else:
                train_family(family, _options(args, family, run_dir, seed))
            for split in banks:
                n = args.bank_sizes[0] if split == "train" else args.bank_sizes[1]
                bank = run_dir / f"bank-{split}.npz"
                if bank.is_file():
                    log.info("%s: written already, kept", bank)
                    continue
                # Bank seeds differ from the training seed's and between splits, so no two banks share noise.
                _write_bank(model, n, bank, 1000 + 10 * seed + (split == "test"), split, args.data_dir, "cpu")


def run(args: argparse.Namespace) -> int:
    try:
        args._zoo(args)
    except (ZooError, DataError, CheckpointError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    return 0
