"""`rebuild`: train the shipped models again from scratch, by the recipes their checkpoints record.

Each target is a list of steps, each one an ordinary ``python -m training`` command (``train``,
``train-classifier``, ``train-detector``, ``train-pix2pix``) whose run directory lies under ``--out``:

- ``classifier``: the reference classifier, ``OUT/classifier``.
- ``gan``: the generator and the discriminator, ``OUT/gan-aux/generator`` and ``OUT/gan-aux/discriminator``.
- ``detector``: the GAN above, the other generators the detector trains against or is tested on (early
  snapshots of runs with other seeds, some of which fail on purpose), then the detector in four runs, each one
  fine-tuning the one before; then the zoo of other generator families (``zoo train``, one instance each, and
  its fake banks) and a fifth run against the GAN and the zoo with the transformation suite; the last is
  ``OUT/detector-stage5/detector``. The first four runs were trained with upload augmentations (JPEG, PNG,
  shifts) that the suite has since replaced; a rebuild runs them with the suite.
- ``pix2pix``: the sketch-to-garment translator, ``OUT/pix2pix/pix2pix`` (and ``OUT/pix2pix/pix2pix-discriminator``).
- ``all``: the four: the classifier, the GAN and pix2pix, then the rest of the detector's chain.

``--dry-run`` prints the commands instead of running them. The steps run one after the other in this process;
one whose checkpoint is already there is skipped, and a GAN or pix2pix run that stopped part-way is resumed, so an
interrupted rebuild continues where it stopped when run again. ``--smoke`` runs the same chain on a few images
with tiny networks and a few steps: it checks that the commands fit together (seconds on tiny data), it does
not make usable models.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch

NAME = "rebuild"
HELP = (
    "train the shipped models again from scratch (classifier, gan, detector, pix2pix or all) by their recorded recipes"
)
TARGETS = ("classifier", "gan", "detector", "pix2pix", "all")
log = logging.getLogger(__name__)

# Smoke mode: these options replace the recipe's (or are added), per command; everything else stays as recorded.
SMOKE = {
    "train-classifier": {
        "--epochs": "1",
        "--limit": "100",
        "--batch-size": "32",
        "--channels": "4",
        "--feature-dim": "8",
    },
    "train": {"--limit": "32", "--batch-size": "32", "--channels": "4", "--z-dim": "8"},
    "train-pix2pix": {
        "--limit": "32",
        "--batch-size": "16",
        "--channels": "8",
        "--d-channels": "8",
        "--eval-every": "0",
    },
    "zoo train": {"--steps": "2", "--limit": "100", "--batch-size": "16"},
    "zoo sample": {"--n": "40"},
    "train-detector": {
        "--steps": "4",
        "--warmup-steps": "1",
        "--eval-every": "2",
        "--limit": "100",
        "--val-size": "20",
        "--test-samples": "10",
        "--batch-size": "16",
        "--channels": "4",
    },
}


@dataclass(frozen=True)
class Step:
    """One training command: its words after ``python -m training``, and the checkpoint it ends with."""

    argv: tuple[str, ...]
    product: Path  # the checkpoint directory that exists once the step is done
    epochs: int | None = None  # a GAN or pix2pix run: the epochs its product records when done

    @property
    def command(self) -> str:
        return self.argv[0]

    @property
    def smoke_key(self) -> str:
        """The key of its smoke-size options: the command, with its subcommand for ``zoo``."""
        return " ".join(self.argv[:2]) if self.command == "zoo" else self.command

    @property
    def done(self) -> bool:
        """Its product is there: a checkpoint directory with its config, or a file (a fake bank)."""
        return (self.product / "config.json").exists() or (self.product.suffix == ".npz" and self.product.is_file())

    @property
    def run_dir(self) -> Path:
        out = Path(self.argv[self.argv.index("--out") + 1])
        return out.parent if out.suffix == ".npz" else out


def gan(out: Path, name: str, *options: str, epochs: int) -> Step:
    """A ``train`` run OUT/NAME; it ends with NAME/generator (and NAME/discriminator)."""
    argv = ("train", "--out", str(out / name), "--epochs", str(epochs), *options)
    return Step(argv, out / name / "generator", epochs)


def detector(out: Path, name: str, *options: str) -> Step:
    """A ``train-detector`` run OUT/NAME; it ends with NAME/detector."""
    return Step(("train-detector", "--out", str(out / name), *options), out / name / "detector")


# The zoo instances the fifth detector run trains against: family -> steps (each family's default recipe, run
# to its end; a rebuild trains the same number of steps, however long they take).
ZOO_STEPS = {"cvae": 3000, "ae-launder": 2000, "upsample-gan": 4000, "ddpm": 6000}
ZOO_BANK = {"train": (10000, 1000), "test": (2000, 1001)}  # split -> (images, seed)


STAGE5_STEPS = "700"


def zoo_steps(out: Path) -> list[Step]:
    """Each family's seed-0 instance (``OUT/zoo/FAMILY-s0/model``), then its train and test fake banks."""
    steps = []
    for family, n_steps in ZOO_STEPS.items():
        run = out / "zoo" / f"{family}-s0"
        argv = ("zoo", "train", "--family", family, "--out", str(run), "--seed", "0", "--steps", str(n_steps))
        steps.append(Step((*argv, "--minutes", "10000"), run / "model"))
        for split, (n, seed) in ZOO_BANK.items():
            bank = run / f"bank-{split}.npz"
            argv = ("zoo", "sample", "--model", str(run / "model"), "--n", str(n), "--out", str(bank))
            steps.append(Step((*argv, "--seed", str(seed), "--split", split), bank))
    return steps


def repeat(flag: str, *values: str | Path) -> tuple[str, ...]:
    return tuple(word for value in values for word in (flag, str(value)))


def classifier_steps(out: Path) -> list[Step]:
    """The reference classifier: 8 epochs, width 32, no shifts, on one thread (models/weights/classifier)."""
    argv = ("train-classifier", "--out", str(out / "classifier"), "--channels", "32", "--epochs", "8")
    return [Step((*argv, "--shift", "0", "--threads", "1"), out / "classifier")]


def gan_steps(out: Path) -> list[Step]:
    """The shipped generator and discriminator: 14 epochs with the auxiliary class loss, early snapshots kept
    for the detector (models/weights/generator, models/weights/discriminator)."""
    return [gan(out, "gan-aux", "--seed", "0", "--aux-weight", "0.5", "--snapshot-epochs", "1,2,8", epochs=14)]


def detector_steps(out: Path) -> list[Step]:
    """The shipped detector (models/weights/detector) and every generator its four runs name."""
    g = out / "gan-aux"
    snapshots = (g / "generator-epoch008", g / "generator-epoch002", g / "generator-epoch001")
    # Stages 1-3 are tested on the previous GAN recipe, another seed and an unconditional GAN.
    holdouts_1 = repeat(
        "--holdout-generator",
        out / "gan-main/generator-epoch001",
        out / "gan-seed1/generator",
        out / "gan-uncond/generator",
        out / "gan-main/generator",
    )
    # Stage 4 trains against early generators of other runs too, two of which fail (seed 4: a texture, seed 6:
    # noise), and is tested on the failed epoch-1 snapshot of seed 1 and on other seeds' early generators.
    early = (
        out / "gan-aux-2ep/generator-epoch001",
        out / "gan-aux-2ep/generator",
        *(out / f"gan-seed{s}/generator" for s in (4, 5, 6)),
    )
    holdouts_4 = repeat(
        "--holdout-generator",
        out / "gan-seed1/generator-epoch001",
        out / "gan-seed3/generator",
        out / "gan-seed7/generator",
        out / "gan-uncond/generator",
        out / "gan-seed1/generator",
    )
    projection_only = ("--aux-weight", "0")
    return [
        *gan_steps(out),
        gan(out, "gan-main", "--seed", "0", *projection_only, "--snapshot-epochs", "1,2", epochs=7),
        gan(out, "gan-seed1", "--seed", "1", *projection_only, "--snapshot-epochs", "1", epochs=2),
        gan(out, "gan-uncond", "--seed", "2", "--unconditional", epochs=2),
        # Width 48, against the final generator and three snapshots in equal shares.
        detector(
            out,
            "detector-stage1",
            *("--steps", "12000", "--eval-every", "2000", "--channels", "48"),
            *repeat("--generator", g / "generator", *snapshots),
            *holdouts_1,
        ),
        # Longer, from those weights, the final generator drawing two shares of the fakes.
        detector(
            out,
            "detector-stage2",
            *("--init", str(out / "detector-stage1/detector"), "--steps", "14000", "--lr", "3e-4"),
            *("--eval-every", "2000"),
            *repeat("--generator", g / "generator", g / "generator", *snapshots),
            *holdouts_1,
        ),
        # Once more, the final generator drawing half the fakes.
        detector(
            out,
            "detector-stage3",
            *("--init", str(out / "detector-stage2/detector"), "--steps", "12500", "--lr", "3e-4"),
            *("--eval-every", "1000"),
            *repeat("--generator", g / "generator", g / "generator", g / "generator", *snapshots),
            *holdouts_1,
        ),
        gan(out, "gan-aux-2ep", "--seed", "0", "--aux-weight", "0.5", "--snapshot-epochs", "1", epochs=2),
        *(gan(out, f"gan-seed{s}", "--seed", str(s), *projection_only, epochs=1) for s in (4, 5)),
        gan(out, "gan-seed6", "--seed", "6", *projection_only, "--limit", "20000", epochs=1),
        *(gan(out, f"gan-seed{s}", "--seed", str(s), *projection_only, epochs=1) for s in (3, 7)),
        # Mirrored images, and half the fakes from early generators of other runs, failed ones included.
        detector(
            out,
            "detector-stage4",
            *("--init", str(out / "detector-stage3/detector"), "--mirror-p", "0.5", "--steps", "8000"),
            *("--warmup-steps", "400", "--lr", "3e-4", "--eval-every", "500", "--stream-seed", "17"),
            *repeat("--generator", *[g / "generator"] * 5, *early),
            *holdouts_4,
        ),
        *zoo_steps(out),
        # The transformation suite on real and fake alike, against the GAN (two shares) and the zoo's families.
        detector(
            out,
            "detector-stage5",
            *("--init", str(out / "detector-stage4/detector"), "--mirror-p", "0.5", "--steps", STAGE5_STEPS),
            *("--batch-size", "64", "--warmup-steps", "100", "--lr", "3e-4", "--eval-every", "200"),
            *("--stream-seed", "51", "--test-samples", "1000"),
            *repeat("--generator", g / "generator", g / "generator"),
            *repeat("--bank", *(out / "zoo" / f"{f}-s0" / "bank-train.npz" for f in ZOO_STEPS)),
        ),
    ]


# The shipped translator (models/weights/pix2pix): lambda and epochs as its config.json records them. Lambda 10,
# not pix2pix's 100: after one epoch of each, the classifier recognised more translations (docs/pix2pix.md).
PIX2PIX_EPOCHS = 7
PIX2PIX_L1_WEIGHT = "10"


def pix2pix_steps(out: Path) -> list[Step]:
    """The shipped sketch-to-garment translator, on one thread (models/weights/pix2pix)."""
    run = out / "pix2pix"
    argv = ("train-pix2pix", "--out", str(run), "--epochs", str(PIX2PIX_EPOCHS), "--seed", "0")
    argv += ("--l1-weight", PIX2PIX_L1_WEIGHT, "--threads", "1")
    return [Step(argv, run / "pix2pix", PIX2PIX_EPOCHS)]


def recipe(target: str, out: str | Path) -> list[Step]:
    """The steps that rebuild ``target`` under ``out``, in order."""
    out = Path(out)
    if target == "classifier":
        return classifier_steps(out)
    if target == "gan":
        return gan_steps(out)
    if target == "detector":
        return detector_steps(out)
    if target == "pix2pix":
        return pix2pix_steps(out)
    if target == "all":
        # The detector's chain starts with the GAN: the three single models first, then the rest of the chain.
        detector, gan = detector_steps(out), len(gan_steps(out))
        return classifier_steps(out) + detector[:gan] + pix2pix_steps(out) + detector[gan:]
    raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")


def with_options(argv: tuple[str, ...], options: dict[str, str]) -> tuple[str, ...]:
    """``argv`` with each option's value replaced, or the option added when it is not there."""
    words = list(argv)
    for flag, value in options.items():
        if flag in words:
            words[words.index(flag) + 1] = value
        else:
            words += [flag, value]
    return tuple(words)


def finalize(step: Step, args: argparse.Namespace) -> tuple[str, ...]:
    """The step's words as this rebuild runs them: smoke-sized, with the data, device and progress options."""
    argv = with_options(step.argv, SMOKE[step.smoke_key]) if args.smoke else step.argv
    extra = {"--data-dir": args.data_dir, "--device": args.device}
    argv = with_options(argv, {flag: value for flag, value in extra.items() if value})
    quiet = args.no_progress and step.smoke_key != "zoo sample"  # sampling a bank shows no progress bar
    return (*argv, "--no-progress") if quiet else argv


def recorded_epochs(product: Path) -> int | None:
    """The epochs a GAN or pix2pix checkpoint records, or None when there is none."""
    try:
        return int(json.loads((product / "config.json").read_text())["training"]["epochs"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


def plan(step: Step, args: argparse.Namespace) -> tuple[str, ...] | None:
    """What to run for a step: None when its checkpoint is there, a resume for a GAN or pix2pix run that stopped
    after an epoch, else the step. Any other unfinished run is refused (ValueError), never overwritten."""
    if step.epochs is not None:
        done = recorded_epochs(step.product)
        if done == step.epochs:
            return None
        if (step.run_dir / "state.pt").exists():
            words = (step.command, "--resume", str(step.run_dir), "--epochs", str(step.epochs))
            words = with_options(words, {"--device": args.device} if args.device else {})
            return (*words, "--no-progress") if args.no_progress else words
    elif step.done:
        return None
    if step.run_dir.exists() and step.run_dir != step.product and step.product.suffix != ".npz":
        raise ValueError(f"{step.run_dir} holds an unfinished run that cannot be resumed; remove it to train it again")
    return finalize(step, args)


def shipped(target: str, out: str | Path) -> dict[str, Path]:
    """Where a rebuild of ``target`` leaves each shipped model, by its name under models/weights/."""
    out = Path(out)
    products = {
        "classifier": out / "classifier",
        "generator": out / "gan-aux/generator",
        "discriminator": out / "gan-aux/discriminator",
        "detector": out / "detector-stage5/detector",
    }
    if target == "pix2pix":
        return {"pix2pix": out / "pix2pix/pix2pix"}
    names = {"classifier": ["classifier"], "gan": ["generator", "discriminator"], "all": list(products)}
    return {name: products[name] for name in names.get(target, ["generator", "discriminator", "detector"])}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", choices=TARGETS, help="what to rebuild")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for every run directory of the rebuild")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the same chain on a few images with tiny networks and a few steps: checks the commands, in seconds",
    )
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N for every step (default: each command's own)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def refused(steps: list[Step], args: argparse.Namespace) -> list[str]:
    """What this code's command line refuses of the steps, one line a step (none: every step would start).

    A recipe is the command as it ran when the shipped model was trained; a command that has changed since
    (an option renamed or gone) is found here, before any step has run."""
    from training.cli import build_parser

    problems = []
    parser = build_parser()
    for step in steps:
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):  # argparse prints its usage and error, then exits
                parser.parse_args(list(finalize(step, args)))
        except SystemExit:
            lines = errors.getvalue().strip().splitlines()
            problems.append(f"{step.run_dir.name}: {lines[-1] if lines else 'refused'}")
    return problems


def run(args: argparse.Namespace) -> int:
    from training.cli import main  # the command line itself runs each step, as a user would type it

    steps = recipe(args.target, args.out)
    if args.dry_run:
        for step in steps:
            print(shlex.join(["python", "-m", "training", *finalize(step, args)]))
    problems = refused(steps, args)
    if problems:
        for problem in problems:
            log.error("%s", problem)
        log.error(
            "this code's commands refuse %d step(s) of the %s recipe: the shipped checkpoint was trained by a "
            "version of the command that took them; nothing was run",
            len(problems),
            args.target,
        )
        return 2
    if args.dry_run:
        return 0
    for number, step in enumerate(steps, 1):
        try:
            argv = plan(step, args)
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        if argv is None:
            log.info("step %d/%d: %s is there already", number, len(steps), step.product)
            continue
        log.info("step %d/%d: %s", number, len(steps), shlex.join(["python", "-m", "training", *argv]))
        threads = torch.get_num_threads()  # a step may set its own (train-classifier --threads 1)
        try:
            status = main(list(argv))
        finally:
            torch.set_num_threads(threads)
        if status:
            log.error("step %d/%d failed (exit status %d); the steps before it are kept", number, len(steps), status)
            return status
    for name, path in shipped(args.target, args.out).items():
        log.info("models/weights/%s <- %s", name, path)
    return 0
