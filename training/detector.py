"""Training the real/fake detector against frozen generators, then calibrating and evaluating it.

A detector run directory holds:
  options.json        the options, written before the first step
  steps.jsonl         one line per logged step (loss, accuracy, images per second)
  stats.jsonl         one line per validation (loss, accuracy on the held-out split)
  detector/           the exported checkpoint; its config.json carries the fitted
                      temperature, ECE before/after, and the test figures per generator

What the detector sees is what the service sees: real training images against
fakes of every source (the project's generators, drawn fresh at every step and
quantized to uint8, and banks of other generator families), both put through
the same processing drawn from the transformation suite (``training.transforms``:
JPEG, blur, sharpening, resizing, noise, shifts, tone, chains of two) and decoded
by the service's own decoder, so that processing is never evidence of either.
Labels are dropped at random, and always for the fakes of unconditional
generators; the reals lose theirs at the same rate in every batch, so that
"no label" says nothing about real or fake.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from models import NUM_CLASSES, Detector, DetectorConfig, load_model, save_model, to_float
from training.calibration import calibrate
from training.data import Split, load_split
from training.device import resolve_device
from training.evaluation import balanced_draw, stream_seed
from training.fakes import UNKNOWN, BankSource, FakeMix, open_source
from training.loop import code_version
from training.metrics.detection import detection_figures_from_logits
from training.transforms import SUITE, AugmentOptions, random_augment

log = logging.getLogger(__name__)

OPTIONS_NAME = "options.json"
DEFAULT_CHANNELS = 16  # detector width at 28x28 when neither --channels nor --init gives one
EVAL_JPEG_QUALITY = 75  # the "under JPEG re-encoding" test figures


@dataclass
class DetectorOptions:
    out: str
    generators: list[str] = field(default_factory=list)  # fake sources: generator checkpoint dirs or fake banks (.npz)
    holdout_generators: list[str] = field(default_factory=list)  # evaluated only: sources it never saw
    data_dir: str | None = None
    dataset: str = "fashion-mnist"
    steps: int = 2000  # optimizer steps; every step draws fresh fakes
    batch_size: int = 128  # images per step: half real, half fake
    lr: float = 1e-3  # AdamW, cosine-decayed to 0 over the run
    warmup_steps: int = 0  # steps over which the learning rate rises linearly to lr first (fine-tuning)
    weight_decay: float = 1e-4
    channels: int | None = None  # detector width at 28x28; None: the ``init`` detector's, else DEFAULT_CHANNELS
    init: str | None = None  # detector checkpoint to start from (fine-tuning); None: random weights
    label_dropout: float = 0.3  # probability that a label is withheld (the detector must work without)
    ema_decay: float = 0.0  # > 0: validate and export an exponential moving average of the weights (and BN statistics)
    dropout: float = 0.0  # share of the detector's pooled features zeroed at each training step (DetectorConfig)
    mirror_real_p: float = 0.0  # probability that a real training image is mirrored left to right (reals only)
    mirror_p: float = 0.0  # probability that a training image, real or fake alike, is mirrored left to right
    val_size: int = 5000  # real training images held out for validation and calibration (plus as many fakes)
    test_samples: int = 2000  # real test images, and fakes per generator, for the test figures
    eval_every: int = 250  # steps between validations (the best one is exported)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    seed: int = 0  # the real split (validation images), weight init, validation fakes and test figures
    stream_seed: int | None = None  # the training stream (real batches, fakes, augmentation, dropout); None: seed
    device: str = "auto"
    limit: int | None = None  # first N training images only (smoke runs)
    log_every: int = 50
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        if not self.generators:
            raise ValueError("give at least one --generator DIR or --bank NPZ to train against")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError("--batch-size must be an even number >= 2 (half real, half fake)")
        if self.steps < 1:
            raise ValueError("--steps must be at least 1")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError("--warmup-steps must be >= 0 and fewer than --steps")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ValueError("--label-dropout must be in [0, 1]")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("--ema-decay must be in [0, 1) (0: no averaging)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("--dropout must be in [0, 1)")
        if not 0.0 <= self.mirror_real_p <= 1.0:
            raise ValueError("--mirror-real-p must be in [0, 1]")
        if not 0.0 <= self.mirror_p <= 1.0:
            raise ValueError("--mirror-p must be in [0, 1]")
        if self.val_size < 2 or self.test_samples < 1 or self.eval_every < 1:
            raise ValueError("--val-size must be >= 2, --test-samples and --eval-every >= 1")
        self.augment.check()


# Augmentations ----------------------------------------------------------------------------------


def mirror(images: torch.Tensor, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Mirror each uint8 (N, 28, 28) image left to right with probability ``p``; ``p`` = 0 returns ``images``.

    For real images only: a mirrored photo of a garment is as real as the photo, and one the detector has not
    memorized, while a generator's artifacts have a direction (docs/detector.md), so mirrored fakes would be
    fakes of another generator. Measured, it does harm (docs/detector.md, "What was tried"): since only reals are
    mirrored, orientation itself becomes evidence of "real", so mirrored fakes pass twice as often and the
    unmirrored real images it is judged on lose accuracy after JPEG. Kept to reproduce that run; default off.
    ``--mirror-p`` mirrors real and fake images alike instead, so that orientation says nothing.
    ``p`` = 0 draws nothing from ``rng``, so runs without it keep their streams.
    """
    if p == 0.0:
        return images  # no copy on every training step of every run that leaves it off
    flip = torch.from_numpy(rng.random(len(images)) < p)
    return torch.where(flip.view(-1, 1, 1), images.flip(-1), images)  # (N, 28, 28): chosen rows' columns reversed


def withhold_labels(
    real_y: torch.Tensor, fake_y: torch.Tensor, p: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Withhold labels (set UNKNOWN) so that "unknown" is as frequent among reals as among fakes.

    Fakes lose theirs with probability ``p`` and always when their generator is
    unconditional (already UNKNOWN); then as many reals, in proportion, lose theirs.
    """
    fake_y = fake_y.clone()
    fake_y[torch.from_numpy(rng.random(len(fake_y)) < p)] = UNKNOWN
    rate = float((fake_y == UNKNOWN).float().mean()) if len(fake_y) else p
    real_y = real_y.clone()
    k = round(rate * len(real_y))
    real_y[torch.from_numpy(rng.permutation(len(real_y))[:k])] = UNKNOWN
    return real_y, fake_y


# Prediction and figures -------------------------------------------------------------------------


def draw_test_reals(
    samples: int, seed: int, stream: str, dataset: str = "fashion-mnist", data_dir: str | None = None
) -> Split:
    """``samples`` real test images (as many of each class as can be), picked by the seeded stream ``stream``:
    every report names its own, so that its committed figures are drawn again exactly. Returns a Split."""
    test = load_split("test", dataset, data_dir)
    return balanced_draw(test, min(samples, len(test)), seed, stream, NUM_CLASSES)


@torch.no_grad()
def predict_logits(
    detector: Detector,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    device: torch.device,
    *,
    batch_size: int = 1000,
) -> torch.Tensor:
    """Raw logits (N,) float32 on the CPU for uint8 (N, 28, 28) images; labels UNKNOWN (or None) = not given."""
    detector.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_float(images[i : i + batch_size].to(device)).unsqueeze(1)  # (b, 1, 28, 28)
        y = None if labels is None else labels[i : i + batch_size].to(device)
        out.append(detector(x, y).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def detection_figures(real_logits: torch.Tensor, fake_logits: torch.Tensor, temperature: float) -> dict[str, Any]:
    """Accuracy at 0.5, ROC AUC and ECE (after temperature scaling) of real (1) vs fake (0) logits."""
    logits = torch.cat([real_logits, fake_logits]).double().numpy()
    targets = np.concatenate([np.ones(len(real_logits)), np.zeros(len(fake_logits))])
    return detection_figures_from_logits(logits, targets, temperature=temperature).to_json()


def evaluate_detector(
    detector: nn.Module,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    fakes: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    temperature: float,
    device: torch.device,
    needs_label: bool = False,
) -> dict[str, Any]:
    """Figures of ``detector`` on real uint8 (N, 28, 28) images against each named set of fakes.

    Each set is judged clean and after a JPEG round trip (quality 75), with its
    labels given ("labelled", conditional generators only) and withheld
    ("unlabelled"). The reals are the same for every set. A model that ``needs_label``
    (the GAN's conditional discriminator) is judged labelled only, on conditional generators only.
    """
    label_modes = ("labelled",) if needs_label else ("labelled", "unlabelled")
    jpeg = SUITE[f"jpeg{EVAL_JPEG_QUALITY}"]
    versions = {"clean": real, jpeg.name: jpeg(real)}
    real_logits = {
        (v, mode): predict_logits(detector, images, real_labels if mode == "labelled" else None, device)
        for v, images in versions.items()
        for mode in label_modes
    }
    report: dict[str, Any] = {}
    for name, (images, labels) in fakes.items():
        conditional = bool((labels != UNKNOWN).all())
        modes = tuple(m for m in label_modes if m == "unlabelled" or (conditional and detector.conditional))
        if not modes:
            continue  # a model that needs labels cannot judge an unconditional generator's fakes
        fake_versions = {"clean": images, jpeg.name: jpeg(images)}
        report[name] = {
            v: {
                mode: detection_figures(
                    real_logits[(v, mode)],
                    predict_logits(detector, fake_images, labels if mode == "labelled" else None, device),
                    temperature,
                )
                for mode in modes
            }
            for v, fake_images in fake_versions.items()
        }
    return report


def validation_set(
    real: torch.Tensor,
    real_y: torch.Tensor,
    fakes: FakeMix,
    seed: int,
    label_dropout: float,
    augment_opts: AugmentOptions,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed validation set: held-out reals and as many seeded fakes, augmented like training images.

    Returns uint8 images (2N, 28, 28), labels (2N,) (UNKNOWN where withheld) and targets (2N,), reals first;
    the same for the same ``seed`` and generators, so a continuation and an ensemble calibrate on the same images.
    """
    rng = torch.Generator(device=device).manual_seed(seed + 1)
    np_rng = np.random.default_rng(seed + 1)
    fake, fake_y = fakes.sample(len(real), rng)
    real_y, fake_y = withhold_labels(real_y, fake_y, label_dropout, np_rng)
    images = torch.cat([random_augment(real, np_rng, augment_opts), random_augment(fake, np_rng, augment_opts)])
    labels = torch.cat([real_y, fake_y])
    targets = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
    return images, labels, targets


def test_figures(
    detector: nn.Module,
    seen: FakeMix,
    holdout_generators: Sequence[str],
    *,
    samples: int,
    seed: int,
    dataset: str,
    data_dir: str | None,
    temperature: float,
    device: torch.device,
) -> dict[str, Any]:
    """Real test images against fakes of each source (a generator's fresh ones, drawn as ``evaluate`` draws them;
    a bank's images of the reals' classes): the figures of ``evaluate_detector`` keyed "seen:PATH" for the
    sources trained against, "unseen:PATH" for the others."""
    real = draw_test_reals(samples, seed, "detector-test-real", dataset, data_dir)
    fakes: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    unseen = [open_source(p, device) for p in holdout_generators]
    # A training bank's images are images the detector trained on: they measure memory, not detection. Its
    # family is measured on a test bank (--holdout-generator, or the robustness report); generators give fresh fakes.
    fresh = [s for s in seen.sources if not isinstance(s, BankSource)]
    for kind, group in (("seen", fresh), ("unseen", unseen)):
        for source in group:
            # A fake carries the label it was generated for: the same labels as the reals.
            fakes[f"{kind}:{source.path}"] = source.for_labels(
                real.labels, stream_seed(seed, f"detector-test:{kind}:{source.path}")
            )
    return evaluate_detector(detector, real.images, real.labels, fakes, temperature=temperature, device=device)


# Training ---------------------------------------------------------------------------------------


def lr_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup_steps: int) -> LRScheduler:
    """Cosine decay to 0 over ``steps``, after a linear rise over the first ``warmup_steps`` (0: none).

    A fine-tuning run starts a fresh AdamW, whose first steps move every weight by about the full learning rate
    whatever its gradient; a trained detector loses much of what it knew to that, unless the rate starts low.
    """
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warmup_steps)
    if not warmup_steps:
        return cosine
    rise = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [rise, cosine], milestones=[warmup_steps])


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices of ``n`` real training images: a seeded permutation, the first ``val_size``
    held out. A detector's ``training`` facts (seed, train_images, val_images) give its split again."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:], perm[:val_size]


def split_reals(
    split: Split, val_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, validation images, validation labels) of real training images."""
    train_idx, val_idx = split_indices(len(split), val_size, seed)
    return split.images[train_idx], split.labels[train_idx], split.images[val_idx], split.labels[val_idx]


class DetectorTrainer:
    """One detector run: data, frozen generators, the loop, calibration, test figures, export."""

    def __init__(self, opts: DetectorOptions) -> None:
        opts.check()
        self.opts = opts
        self.run_dir = Path(opts.out)
        if (self.run_dir / OPTIONS_NAME).exists():
            raise ValueError(f"{self.run_dir} already holds a run ({OPTIONS_NAME}); choose a new --out")
        self.device = resolve_device(opts.device)
        self.code_version = code_version()  # the code that trains, not the checkout at export time
        torch.manual_seed(opts.seed)
        self.fakes = FakeMix(opts.generators, self.device)
        self.init_facts: dict[str, Any] | None = None
        if opts.init is not None:
            self.detector = self._load_init(opts.init)
        else:
            # A detector only needs labels when some generator is conditional: otherwise no fake ever carries one.
            num_classes = NUM_CLASSES if self.fakes.any_conditional else 0
            opts.channels = DEFAULT_CHANNELS if opts.channels is None else opts.channels
            config = DetectorConfig(num_classes=num_classes, channels=opts.channels, dropout=opts.dropout)
            self.detector = Detector(config).to(self.device)
        self.optimizer = torch.optim.AdamW(self.detector.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        self.scheduler = lr_schedule(self.optimizer, opts.steps, opts.warmup_steps)
        # The weights that are validated, calibrated and exported: the trained ones, or their running average,
        # which follows the same descent with less of each step's noise (and of the last batches' real images).
        self.ema = (
            AveragedModel(self.detector, multi_avg_fn=get_ema_multi_avg_fn(opts.ema_decay), use_buffers=True)
            if opts.ema_decay
            else None
        )
        # A continuation (--init) keeps --seed, which fixes the split, and may take a new stream: fresh batches.
        self.stream_seed = opts.seed if opts.stream_seed is None else opts.stream_seed
        torch.manual_seed(self.stream_seed)  # dropout's masks
        self.torch_rng = torch.Generator(device=self.device).manual_seed(self.stream_seed)
        self.np_rng = np.random.default_rng(self.stream_seed)
        self.step = 0

    def _load_init(self, path: str) -> Detector:
        """The detector to fine-tune: its weights and width; refused when it cannot use the generators' labels."""
        detector = load_model(path, expected=Detector, device=self.device)
        assert isinstance(detector, Detector)
        facts = detector.checkpoint.get("training", {})
        width = detector.config.channels
        if self.opts.channels is None:
            self.opts.channels = width  # recorded in options.json
        if self.opts.channels < width:
            raise ValueError(
                f"--init {path} has width {width}, more than --channels {self.opts.channels}; a detector can be "
                "widened, not narrowed: omit --channels to keep its width, or give a larger one"
            )
        if self.fakes.any_conditional and not detector.conditional:
            raise ValueError(f"--init {path} takes no labels, but a --generator is conditional; start from scratch")
        # Calibration and model selection need validation images the starting detector never trained on.
        same_split = {"seed": self.opts.seed, "dataset": self.opts.dataset, "val_images": self.opts.val_size}
        differ = [f"{k} {facts.get(k)!r} (here {v!r})" for k, v in same_split.items() if facts.get(k) != v]
        if differ:
            raise ValueError(
                f"--init {path} was trained with another validation split ({', '.join(differ)}): "
                "use the same --seed, --dataset and --val-size, or its validation images were training images"
            )
        self.init_facts = {
            "path": path,
            "channels": width,
            **{k: facts[k] for k in ("steps", "seed", "train_images", "code_version") if k in facts},
        }
        if self.opts.channels > width:
            # Once every check has passed: the same verdicts, with room to learn more (new weights from --seed).
            detector = detector.widened(self.opts.channels)
        detector.config.dropout = self.opts.dropout  # a training setting, no weights: this run's, as exported
        return detector

    def _split_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training images split by a seeded permutation into (train, val) images and labels."""
        opts = self.opts
        split = load_split("train", opts.dataset, opts.data_dir, limit=opts.limit)
        if len(split) < opts.val_size + opts.batch_size // 2:
            raise ValueError(
                f"{len(split)} training images cannot hold --val-size {opts.val_size} "
                f"plus a half batch of {opts.batch_size // 2}"
            )
        return split_reals(split, opts.val_size, opts.seed)

    def _validation_set(self, real: torch.Tensor, real_y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        opts = self.opts
        return validation_set(real, real_y, self.fakes, opts.seed, opts.label_dropout, opts.augment, self.device)

    @property
    def judged(self) -> Detector:
        """The detector that is validated and exported: the weight average when there is one."""
        return self.detector if self.ema is None else self.ema.module

    def _validate(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        logits = predict_logits(self.judged, images, labels, self.device)
        return {
            "val_loss": float(F.binary_cross_entropy_with_logits(logits, targets)),
            "val_accuracy": float(((logits > 0).float() == targets).float().mean()),  # "real" iff P(real) > 0.5
        }

    def train(self) -> dict[str, Any]:
        """Train, keep the best validated weights, calibrate, evaluate on the test split, export."""
        opts, dev = self.opts, self.device
        # Load the real images and hold out the validation split (refused before the run directory exists).
        train_x, train_y, val_x, val_y = self._split_data()
        if self.init_facts is not None and self.init_facts.get("train_images") != len(train_x):
            raise ValueError(
                f"--init {opts.init} trained on {self.init_facts.get('train_images')} images, this run on {len(train_x)}: "
                "use the same --limit, or its validation images were training images"
            )

        # Write the options before the first step.
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / OPTIONS_NAME).write_text(json.dumps(opts.to_json(), indent=2) + "\n")
        val_images, val_labels, val_targets = self._validation_set(val_x, val_y)
        train_x, train_y = train_x.to(dev), train_y.to(dev)
        log.info(
            "detector: %d training / %d validation real images, %d generators, %d steps",
            len(train_x),
            len(val_x),
            len(self.fakes.sources),
            opts.steps,
        )

        half = opts.batch_size // 2
        targets = torch.cat([torch.ones(half), torch.zeros(half)]).to(dev)  # (B,): real first
        amp = (
            torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
        )
        best: tuple[float, dict[str, torch.Tensor], int] | None = None
        bar = tqdm(range(opts.steps), desc="detector", disable=not opts.progress)
        started, sums, seen = time.perf_counter(), torch.zeros(2), 0
        for _ in bar:
            self.detector.train()
            # Sample a real batch and fresh fakes.
            idx = torch.randint(0, len(train_x), (half,), generator=self.torch_rng, device=dev)
            real, real_y = train_x[idx].cpu(), train_y[idx].cpu()
            real = mirror(real, opts.mirror_real_p, self.np_rng)  # more real variety, fewer images to memorize
            fake, fake_y = self.fakes.sample(half, self.torch_rng)
            # Both alike: a mirrored garment is a plausible upload, and a mirrored fake must not pass as real.
            real, fake = mirror(real, opts.mirror_p, self.np_rng), mirror(fake, opts.mirror_p, self.np_rng)

            # Augment both alike, and withhold labels at the same rate.
            real_y, fake_y = withhold_labels(real_y, fake_y, opts.label_dropout, self.np_rng)
            images = torch.cat(
                [random_augment(real, self.np_rng, opts.augment), random_augment(fake, self.np_rng, opts.augment)]
            )
            x = to_float(images.to(dev)).unsqueeze(1)  # (B, 1, 28, 28)
            y = torch.cat([real_y, fake_y]).to(dev)  # (B,), UNKNOWN = not given

            # Update the detector.
            with amp:
                logits = self.detector(x, y).float()  # (B,)
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.detector)
            self.step += 1

            # Log the step.
            accuracy = ((logits.detach() > 0).float() == targets).float().mean()
            sums += torch.stack([loss.detach().cpu(), accuracy.cpu()])
            seen += 1
            if self.step % opts.log_every == 0 or self.step == opts.steps:
                rate = self.step * opts.batch_size / (time.perf_counter() - started)
                row = {"step": self.step, "loss": float(sums[0] / seen), "accuracy": float(sums[1] / seen)}
                row["images_per_s"] = rate
                self._append("steps.jsonl", row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", acc=f"{row['accuracy']:.4f}", img_s=f"{rate:.0f}")
                sums, seen = torch.zeros(2), 0

            # Validate, and keep the best weights.
            if self.step % opts.eval_every == 0 or self.step == opts.steps:
                record = {"step": self.step, **self._validate(val_images, val_labels, val_targets)}
                self._append("stats.jsonl", record)
                log.info(
                    "step %d/%d: val loss %.4f, val accuracy %.4f",
                    self.step,
                    opts.steps,
                    record["val_loss"],
                    record["val_accuracy"],
                )
                if best is None or record["val_loss"] < best[0]:
                    best = (record["val_loss"], copy.deepcopy(self.judged.state_dict()), self.step)
        bar.close()
        assert best is not None  # the last step always validates
        self.detector.load_state_dict(best[1])
        seconds = time.perf_counter() - started

        # Calibrate on the validation split.
        val_logits = predict_logits(self.detector, val_images, val_labels, dev)
        calibration = calibrate(val_logits, val_targets)
        log.info("%s", calibration)

        # Evaluate on the test split against fresh fakes of every generator, seen and held out.
        test = self._test_figures(calibration.temperature)

        # Export the detector.
        metrics = {
            **calibration.to_metrics(),
            "best_step": best[2],
            "val_loss": best[0],
            "test": test,
        }
        facts = {
            "dataset": opts.dataset,
            "train_images": len(train_x),
            "val_images": len(val_x),
            "steps": opts.steps,
            "batch_size": opts.batch_size,
            "lr": opts.lr,
            "warmup_steps": opts.warmup_steps,
            "weight_decay": opts.weight_decay,
            "label_dropout": opts.label_dropout,
            "ema_decay": opts.ema_decay,
            "dropout": opts.dropout,
            "mirror_real_p": opts.mirror_real_p,
            "mirror_p": opts.mirror_p,
            "augment": dataclasses.asdict(opts.augment),
            "generators": self.fakes.describe(),
            "holdout_generators": list(opts.holdout_generators),
            "init": self.init_facts,
            "seed": opts.seed,
            "stream_seed": self.stream_seed,
            "device": str(dev),
            "seconds": seconds,
            "code_version": self.code_version,
            "torch": torch.__version__,
        }
        save_model(self.detector, self.run_dir / "detector", training=facts, metrics=metrics)
        log.info("exported %s", self.run_dir / "detector")
        return metrics

    def _test_figures(self, temperature: float) -> dict[str, Any]:
        opts = self.opts
        return test_figures(
            self.detector,
            self.fakes,
            opts.holdout_generators,
            samples=opts.test_samples,
            seed=opts.seed,
            dataset=opts.dataset,
            data_dir=opts.data_dir,
            temperature=temperature,
            device=self.device,
        )

    def _append(self, name: str, row: dict[str, Any]) -> None:
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(row) + "\n")


def train_detector(opts: DetectorOptions) -> dict[str, Any]:
    """Build a detector run and train it; returns the exported metrics."""
    return DetectorTrainer(opts).train()
