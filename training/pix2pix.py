"""Sketch to garment (pix2pix, Isola et al. 2017): the training run, and the figures of a translator.

Pairs are made on the fly: the target is a real image, the input its sketch by the training operator
with the training augmentations (``training.sketch``), drawn on the training device from the run's seeded
generator. The loss is pix2pix's: the patch discriminator's BCE on (sketch, image) pairs (halved for D,
as in the paper) plus ``l1_weight`` (lambda) times the L1 distance of the output to the target for G.

A run directory, laid out like the GAN's (``training.loop``):
  options.json        the options, written before the first step
  stats.jsonl         one line per epoch (losses, images/s, and with --eval-every the figures on test pairs);
                      steps.jsonl one line per logged step
  samples/epoch_NNN.png  fixed test pairs, one column per class; rows: sketch, output, target, a sketch by
                      a held-out operator and its output
  progress.gif, losses.png, tb/ (TensorBoard)
  state.pt            resume state (tensors only; loaded with weights_only=True)
  pix2pix/, pix2pix-discriminator/   exported checkpoints; the generator's config records the training facts

The figures of a translator (``translation_figures``, ``evaluate_translator``) are measured on quantized
outputs, as the service would serve them: L1 and SSIM to the target, the reference classifier's accuracy
against the class of the sketch's source image, and FID in the classifier's feature space against the real
test images, for the training operator and for operators that training never used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from models import (
    NAMES,
    WEIGHTS_DIR,
    Classifier,
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    Pix2PixGenerator,
    Pix2PixGeneratorConfig,
    load_model,
    quantize,
    save_model,
    to_float,
)
from training.artifacts import labelled_grid, plot_losses, write_gif
from training.data import Split, load_split
from training.device import resolve_device
from training.evaluation import _display_path, balanced_subset, stream_seed
from training.loop import OPTIONS_NAME, STATE_NAME, RunState, code_version
from training.losses import LOSSES, d_loss, g_loss
from training.metrics.features import embed, evaluating
from training.metrics.fid import fid_from_features
from training.metrics.gan_test import class_accuracy
from training.metrics.ssim import ssim
from training.sketch import HELD_OUT, OPERATORS, TRAIN_OPERATOR, augmented_sketch, sketch

log = logging.getLogger(__name__)

FAMILY_NAME = "pix2pix"  # the zoo family a trained generator belongs to (training.zoo.pix2pix)
GENERATOR_DIR = "pix2pix"
DISCRIMINATOR_DIR = "pix2pix-discriminator"
GRID_OPERATOR = HELD_OUT[0]  # the held-out operator of the per-epoch grid's last two rows
GRID_ROWS = ("sketch", "output", "target", GRID_OPERATOR, "output")


@dataclass
class Pix2PixOptions:
    out: str
    data_dir: str | None = None
    dataset: str = "fashion-mnist"
    epochs: int = 10
    batch_size: int = 64
    lr_g: float = 2e-4  # Adam learning rates
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # lambda: G's loss is adversarial + lambda * L1. pix2pix's 100 was the starting point; after one epoch, 10 made
    # translations the reference classifier recognised more often (80.2% against 79.2%; docs/pix2pix.md).
    l1_weight: float = 10.0
    loss: str = "bce"  # pix2pix's; hinge is available
    channels: int = 32  # G's width at 14x14
    d_channels: int = 32  # D's width at 14x14
    dropout: float = 0.5  # G's dropout on its two innermost decoder stages, in training
    augment: bool = True  # the sketch augmentations of training.sketch; off: clean Sobel sketches
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0: torch's choice)
    limit: int | None = None  # first N training images only (smoke runs)
    eval_every: int = 1  # epochs between the figures on test pairs; 0: never
    eval_images: int = 1000  # test pairs those figures are measured on (the first N of the test split)
    classifier: str | None = None  # reference classifier of those figures (default: the shipped one)
    log_every: int = 50  # steps between steps.jsonl lines
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 mixed precision on CUDA, as the GAN loop runs; full precision on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


class Pix2PixPair:
    """A generator, a patch discriminator and their Adam optimizers; ``step`` is one pix2pix update of both."""

    def __init__(
        self,
        g_config: Pix2PixGeneratorConfig,
        d_config: PatchDiscriminatorConfig,
        *,
        lr_g: float,
        lr_d: float,
        betas: tuple[float, float] = (0.5, 0.999),
        device: torch.device,
    ) -> None:
        self.G = Pix2PixGenerator(g_config).to(device)
        self.D = PatchDiscriminator(d_config).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=betas)

    def step(
        self,
        sketches: torch.Tensor,
        real: torch.Tensor,
        *,
        l1_weight: float,
        loss: str = "bce",
        amp: contextlib.AbstractContextManager | None = None,
    ) -> torch.Tensor:
        """One update of D, then of G, on (B, 1, 28, 28) sketches and their targets, both in -1..1.

        Returns the detached statistics (5,): D's loss, G's adversarial loss, G's L1 (on -1..1), and the
        mean D logits on real and on generated pairs.
        """
        amp = amp or contextlib.nullcontext()
        self.G.train()
        with amp:
            fake = self.G(sketches)  # (B, 1, 28, 28); one pass serves both updates, as in pix2pix

        # Update D (halved, as in pix2pix: D learns more slowly than G).
        with amp:
            real_logits = self.D(sketches, real).float()  # (B, 7, 7)
            fake_logits = self.D(sketches, fake.detach()).float()
            loss_d = 0.5 * d_loss(real_logits, fake_logits, loss)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # Update G: fool the updated D, and stay close to the target.
        self.D.requires_grad_(False)  # D's weight gradients are not needed here
        with amp:
            adv = g_loss(self.D(sketches, fake).float(), loss)
            l1 = (fake.float() - real).abs().mean()
            loss_g = adv + l1_weight * l1
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return torch.stack([loss_d, adv, l1, real_logits.mean(), fake_logits.mean()]).detach()


# The figures of a translator --------------------------------------------------------------------


@torch.no_grad()
def translate(
    generator: Pix2PixGenerator,
    images: torch.Tensor,
    operator: str = TRAIN_OPERATOR,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) -> (their sketches, the generator's outputs), both uint8 (N, 28, 28) on the CPU.

    The generator runs in eval mode (no dropout), and its outputs are quantized as the service quantizes.
    """
    sketches, outputs = [], []
    with evaluating(generator):
        for start in range(0, len(images), batch_size):
            x = to_float(images[start : start + batch_size].to(device)).unsqueeze(1)  # (b, 1, 28, 28)
            s = sketch(x, operator)
            sketches.append(quantize(s).squeeze(1).cpu())
            outputs.append(quantize(generator(s)).squeeze(1).cpu())
    empty = torch.empty(0, 28, 28, dtype=torch.uint8)
    return (torch.cat(sketches), torch.cat(outputs)) if outputs else (empty, empty)


def l1_distance(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute difference of uint8 (N, 28, 28) images, on intensities 0..1: (N,) float64."""
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape")
    return (outputs.double() - targets.double()).abs().flatten(1).mean(dim=1) / 255.0


def translation_figures(
    outputs: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, classifier: Classifier, *, device
) -> dict[str, Any]:
    """L1 and SSIM (on 0..1) of uint8 outputs to their targets, and the classifier's accuracy against ``labels``.

    Also returns the outputs' classifier embedding under "embedding" (for FID); callers drop it from reports.
    """
    emb = embed(classifier, outputs, device=device)
    return {
        "l1": float(l1_distance(outputs, targets).mean()),
        "ssim": float(ssim(outputs.double() / 255.0, targets.double() / 255.0).mean()),
        "accuracy": class_accuracy(emb.predictions, labels, classifier.config.num_classes),
        "embedding": emb,
    }


def evaluate_translator(
    model: str | Path,
    *,
    operators: tuple[str, ...] = (TRAIN_OPERATOR, *HELD_OUT),
    classifier: str | Path | None = None,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    limit: int | None = None,
    device: str = "auto",
    batch_size: int = 1000,
) -> dict[str, Any]:
    """Every figure of a generator checkpoint on test-set pairs, per operator, beside the real-data references.

    The test images (all, or the first ``limit``) are sketched by each operator and translated; the
    references are the classifier's accuracy on the real test images themselves and the FID of as many real
    training images against them, the floor of the FID (the class-balanced draw of ``evaluate``'s, so that the
    full test set gets the floor that ``evaluate`` reports).
    """
    unknown = [o for o in operators if o not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown sketch operator {unknown[0]!r}; expected some of {', '.join(OPERATORS)}")
    started = time.perf_counter()
    dev = resolve_device(device)
    classifier_dir = str(classifier or WEIGHTS_DIR / "classifier")
    generator = load_model(model, expected=Pix2PixGenerator, device=dev)
    clf = load_model(classifier_dir, expected=Classifier, device=dev)
    test = load_split("test", dataset, data_dir, limit=limit)
    train = load_split("train", dataset, data_dir)
    num_classes = clf.config.num_classes
    reference = balanced_subset(train, [-(-len(test) // num_classes)] * num_classes, stream_seed(0, "train-reference"))
    real = embed(clf, test.images, device=dev, batch_size=batch_size)
    ref = embed(clf, reference.images, device=dev, batch_size=batch_size)
    trained_with = (generator.checkpoint.get("training") or {}).get("sketch_operator", TRAIN_OPERATOR)

    report: dict[str, Any] = {
        "model": str(model),
        "model_training": generator.checkpoint.get("training") or {},
        "classifier": _display_path(classifier_dir),
        "classifier_test_accuracy": (clf.checkpoint.get("metrics") or {}).get("test_accuracy"),
        "dataset": dataset,
        "test_images": len(test),
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "real_reference": {
            "accuracy": class_accuracy(real.predictions, test.labels, num_classes).to_json(),
            "fid_train_vs_test": fid_from_features(ref.features, real.features),
            "train_reference_images": len(reference),
        },
        "operators": {},
    }
    for operator in operators:
        _, outputs = translate(generator, test.images, operator, device=dev, batch_size=batch_size)
        figures = translation_figures(outputs, test.images, test.labels, clf, device=dev)
        report["operators"][operator] = {
            "seen_in_training": operator == trained_with,
            "l1": figures["l1"],
            "ssim": figures["ssim"],
            "accuracy": figures["accuracy"].to_json(),
            "fid": fid_from_features(figures["embedding"].features, real.features),
        }
        log.info(
            "%s: L1 %.4f, SSIM %.3f, accuracy %.2f%%",
            operator,
            figures["l1"],
            figures["ssim"],
            100 * figures["accuracy"].overall,
        )
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures worth recording in the checkpoint's config.json (metrics.evaluation)."""
    out: dict[str, Any] = {
        "test_images": report["test_images"],
        "classifier_real_accuracy": report["real_reference"]["accuracy"]["overall"],
        "fid_train_vs_test": report["real_reference"]["fid_train_vs_test"],
    }
    for operator, figures in report["operators"].items():
        out[operator] = {
            "seen_in_training": figures["seen_in_training"],
            "l1": figures["l1"],
            "ssim": figures["ssim"],
            "accuracy": figures["accuracy"]["overall"],
            "fid": figures["fid"],
        }
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: a row per operator, then the accuracy per class."""
    ref = report["real_reference"]
    lines = [
        f"# Sketch to garment: `{report['model']}`",
        "",
        f"{report['test_images']:,} {report['dataset']} test images, each sketched by the operator of the row and "
        f"translated; outputs quantized to uint8 as served. L1 and SSIM to the source image (intensities 0..1); "
        f"accuracy: the reference classifier `{report['classifier']}` on the outputs against the source image's "
        f"class; FID in its feature space against the real test images.",
        "",
        "| Sketch operator | Seen in training | L1 | SSIM | Classifier accuracy | FID |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for operator, f in report["operators"].items():
        lines.append(
            f"| {operator} | {'yes' if f['seen_in_training'] else 'no'} | {f['l1']:.4f} | {f['ssim']:.3f} | "
            f"{100 * f['accuracy']['overall']:.1f}% | {f['fid']:.2f} |"
        )
    lines.append(
        f"| real test images (reference) | | 0 | 1 | {100 * ref['accuracy']['overall']:.1f}% | "
        f"{ref['fid_train_vs_test']:.2f} ({ref['train_reference_images']:,} real training images) |"
    )
    operators = list(report["operators"])
    lines += [
        "",
        "## Classifier accuracy per class",
        "",
        "| Class | " + " | ".join(operators) + " | real test images |",
        "| --- | " + " | ".join("---:" for _ in operators) + " | ---: |",
    ]
    for name in ref["accuracy"]["per_class"]:
        cells = [report["operators"][o]["accuracy"]["per_class"][name] for o in operators]
        cells.append(ref["accuracy"]["per_class"][name])
        lines.append(f"| {name} | " + " | ".join("n/a" if c is None else f"{100 * c:.1f}%" for c in cells) + " |")
    lines += ["", f"Time: {report['seconds']:.0f} s on {report['device']} ({report['threads']} threads).", ""]
    return "\n".join(lines)


# The training run -------------------------------------------------------------------------------


def grid_pairs(test: Split, columns: int = len(NAMES)) -> torch.Tensor:
    """Indices of the per-epoch grid's test pairs: the first image of each class, then the first others."""
    labels = test.labels.cpu()
    firsts = [int(hits[0]) for k in range(columns) if len(hits := (labels == k).nonzero().squeeze(1))]
    rest = [i for i in range(len(labels)) if i not in firsts]
    return torch.tensor((firsts + rest)[:columns], dtype=torch.long)


class Pix2PixTrainer(RunState):
    """One pix2pix run: build or resume, then train epoch by epoch."""

    def __init__(self, opts: Pix2PixOptions) -> None:
        self.opts = opts
        self.run_dir = Path(opts.out)
        self.device = resolve_device(opts.device)
        if opts.loss not in LOSSES:
            raise ValueError(f"unknown loss {opts.loss!r}; expected one of {', '.join(LOSSES)}")
        if opts.batch_size < 2:
            raise ValueError("--batch-size must be at least 2")
        if opts.l1_weight < 0:
            raise ValueError("--l1-weight must be >= 0")
        if opts.threads < 0:
            raise ValueError("--threads must be 0 (torch's choice) or more")
        torch.manual_seed(opts.seed)
        self.pair = Pix2PixPair(
            Pix2PixGeneratorConfig(channels=opts.channels, dropout=opts.dropout),
            PatchDiscriminatorConfig(channels=opts.d_channels),
            lr_g=opts.lr_g,
            lr_d=opts.lr_d,
            betas=(opts.beta1, opts.beta2),
            device=self.device,
        )
        self.rng = torch.Generator(device=self.device).manual_seed(opts.seed)  # batches and sketch augmentations
        self.epoch = 0  # epochs completed
        self.step = 0
        self.seconds = 0.0  # training time over all epochs, resumed runs included

    # Resume state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        p = self.pair
        state = {
            "G": p.G.state_dict(),
            "D": p.D.state_dict(),
            "opt_g": p.opt_g.state_dict(),
            "opt_d": p.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "epoch": torch.tensor(self.epoch),
            "step": torch.tensor(self.step),
            "seconds": torch.tensor(self.seconds, dtype=torch.float64),
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = self.pair
        p.G.load_state_dict(state["G"])
        p.D.load_state_dict(state["D"])
        p.opt_g.load_state_dict(state["opt_g"])
        p.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])

    @classmethod
    def resume(cls, run_dir: str | Path, *, epochs: int | None = None, device: str | None = None) -> Pix2PixTrainer:
        """Rebuild a run from its options.json and state.pt; optionally train to more epochs."""
        run_dir = Path(run_dir)
        try:
            saved = json.loads((run_dir / OPTIONS_NAME).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{run_dir / OPTIONS_NAME}: missing; is {run_dir} a run directory?") from None
        saved["out"] = str(run_dir)
        saved.update({k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None})
        trainer = cls(Pix2PixOptions(**saved))
        state_path = run_dir / STATE_NAME
        if not state_path.exists():
            raise FileNotFoundError(f"{state_path}: missing; the run stopped before its first epoch ended")
        trainer.load_state_dict(torch.load(state_path, map_location=trainer.device, weights_only=True))
        trainer._truncate_logs()
        log.info("resumed %s after epoch %d (step %d)", run_dir, trainer.epoch, trainer.step)
        return trainer

    # Training -----------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train until opts.epochs; return the last epoch's statistics."""
        opts, dev = self.opts, self.device
        if opts.threads:
            torch.set_num_threads(opts.threads)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        # Write the options before the first step.
        (self.run_dir / OPTIONS_NAME).write_text(json.dumps(opts.to_json(), indent=2) + "\n")

        # Load the data once, onto the training device; fix the grid's test pairs.
        train = load_split("train", opts.dataset, opts.data_dir, limit=opts.limit).to(dev)
        test = load_split("test", opts.dataset, opts.data_dir).to(dev)
        steps_per_epoch = len(train) // opts.batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"{len(train)} training images are fewer than one batch of {opts.batch_size}")
        self.grid_images = test.images[grid_pairs(test).to(dev)]  # (10, 28, 28) uint8
        classifier = None
        if opts.eval_every:
            classifier = load_model(opts.classifier or WEIGHTS_DIR / "classifier", expected=Classifier, device=dev)
            self.eval_set = Split(test.images[: opts.eval_images], test.labels[: opts.eval_images])

        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None)
        last: dict[str, Any] = {}
        try:
            while self.epoch < opts.epochs:
                last = self._train_epoch(train, steps_per_epoch, writer, classifier)
        finally:
            writer.close()
        return last

    def _train_epoch(self, train: Split, steps_per_epoch: int, writer, classifier: Classifier | None) -> dict:
        opts, dev = self.opts, self.device
        epoch = self.epoch + 1
        B = opts.batch_size
        amp = autocast(dev)
        perm = torch.randperm(len(train), generator=self.rng, device=dev)
        # Seed the global generator, which G's dropout draws from, from the run's own: an epoch's dropout then
        # depends on nothing that ran before it (building the classifier of --eval-every draws from it too).
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self.rng, device=dev)))
        sums = torch.zeros(5, device=dev)  # loss_d, loss_g (adversarial), l1, D(real), D(fake) over the epoch
        window, window_steps = torch.zeros(5, device=dev), 0  # the same since the last steps.jsonl line
        started = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{opts.epochs}", disable=not opts.progress, leave=False)
        for i in bar:
            # Make the batch's pairs: real images and their (augmented) sketches.
            idx = perm[i * B : (i + 1) * B]
            real = to_float(train.images[idx]).unsqueeze(1)  # (B, 1, 28, 28)
            sketches = augmented_sketch(real, self.rng) if opts.augment else sketch(real)

            # Update D and G.
            stats = self.pair.step(sketches, real, l1_weight=opts.l1_weight, loss=opts.loss, amp=amp)
            self.step += 1
            sums += stats
            window += stats
            window_steps += 1
            if self.step % opts.log_every == 0 or i == steps_per_epoch - 1:
                self._log_step(window / window_steps, writer, bar, (i + 1) * B / (time.perf_counter() - started))
                window.zero_()
                window_steps = 0

        # Summarize the epoch.
        self.epoch = epoch
        seconds = time.perf_counter() - started
        self.seconds += seconds
        means = (sums / steps_per_epoch).tolist()
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": self.step,
            "loss_d": means[0],
            "loss_g": means[1],
            "l1": means[2],
            "d_real": means[3],
            "d_fake": means[4],
            "images_per_s": steps_per_epoch * B / seconds,
            "seconds": seconds,
        }
        if classifier is not None and epoch % opts.eval_every == 0:
            record.update(self._evaluate(classifier))
        for key, value in record.items():
            if key not in ("epoch", "step"):
                writer.add_scalar(f"epoch/{key}", value, self.step)
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info(
            "epoch %d/%d: loss_d %.3f loss_g %.3f l1 %.4f, %.0f img/s%s",
            epoch,
            opts.epochs,
            record["loss_d"],
            record["loss_g"],
            record["l1"],
            record["images_per_s"],
            "".join(f", {k} {record[k]:.4g}" for k in record if k.startswith("val_")),
        )

        # Save the grid, curves, checkpoints and resume state.
        self._write_grid(epoch)
        self._export(record)
        self.save_state()
        return record

    def _log_step(self, stats: torch.Tensor, writer, bar, images_per_s: float) -> None:
        loss_d, loss_g, l1, d_real, d_fake = stats.tolist()
        row = {"step": self.step, "epoch": self.epoch + 1, "loss_d": loss_d, "loss_g": loss_g, "l1": l1}
        row |= {"d_real": d_real, "d_fake": d_fake}
        with open(self.run_dir / "steps.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        for key in ("loss_d", "loss_g", "l1"):
            writer.add_scalar(f"loss/{key}", row[key], self.step)
        bar.set_postfix(loss_d=f"{loss_d:.3f}", loss_g=f"{loss_g:.3f}", l1=f"{l1:.4f}", img_s=f"{images_per_s:.0f}")

    def _evaluate(self, classifier: Classifier) -> dict[str, float]:
        """L1, SSIM and classifier accuracy on the first eval_images test pairs (training operator), and the
        accuracy on sketches by the first held-out operator. Draws no random numbers."""
        G, test, out = self.pair.G, self.eval_set, {}
        for operator, prefix in ((TRAIN_OPERATOR, "val_"), (GRID_OPERATOR, f"val_{GRID_OPERATOR}_")):
            _, outputs = translate(G, test.images, operator, device=self.device)
            figures = translation_figures(outputs, test.images.cpu(), test.labels, classifier, device=self.device)
            out |= {f"{prefix}l1": figures["l1"], f"{prefix}ssim": figures["ssim"]}
            out[f"{prefix}accuracy"] = figures["accuracy"].overall
        return out

    @torch.no_grad()
    def _write_grid(self, epoch: int) -> None:
        rows = []
        for operator in (TRAIN_OPERATOR, GRID_OPERATOR):
            sketches, outputs = translate(self.pair.G, self.grid_images, operator, device=self.device)
            rows += [sketches, outputs] + ([self.grid_images.cpu()] if operator == TRAIN_OPERATOR else [])
        path = self.run_dir / "samples" / f"epoch_{epoch:03d}.png"
        labelled_grid(torch.cat(rows), GRID_ROWS, title=f"epoch {epoch}").save(path)
        write_gif(sorted((self.run_dir / "samples").glob("epoch_*.png")), self.run_dir / "progress.gif")
        plot_losses(self.run_dir / "steps.jsonl", self.run_dir / "losses.png")

    def _export(self, record: dict[str, Any]) -> None:
        opts = self.opts
        facts = {
            "family": FAMILY_NAME,
            "dataset": opts.dataset,
            "train_images": opts.limit or "all",
            "epochs": self.epoch,
            "steps": self.step,
            "batch_size": opts.batch_size,
            "l1_weight": opts.l1_weight,
            "loss": opts.loss,
            "lr_g": opts.lr_g,
            "lr_d": opts.lr_d,
            "sketch_operator": TRAIN_OPERATOR,
            "augment": opts.augment,
            "seed": opts.seed,
            "device": str(self.device),
            "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            "seconds": round(self.seconds, 1),
            "code_version": code_version(),
            "torch": torch.__version__,
        }
        evals = {k: v for k, v in record.items() if k.startswith("val_")}
        save_model(self.pair.G, self.run_dir / GENERATOR_DIR, training=facts, metrics=evals)
        save_model(self.pair.D, self.run_dir / DISCRIMINATOR_DIR, training=facts)


def train(opts: Pix2PixOptions) -> dict[str, Any]:
    """Build a fresh run and train it."""
    return Pix2PixTrainer(opts).train()
