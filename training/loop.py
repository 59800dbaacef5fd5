"""The GAN training loop: options, one run directory, exact resume.

A run directory holds:
  options.json        the options, written before the first step
  stats.jsonl         one line per epoch; steps.jsonl one line per logged step
  samples/epoch_NNN.png, progress.gif, losses.png, tb/ (TensorBoard)
  state.pt            resume state (tensors only; loaded with weights_only=True)
  generator/, discriminator/   exported checkpoints (generator-best/ with --eval-every)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models import (
    NAMES,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    load_model,
    save_model,
    to_float,
)
from models.latents import noise
from models.pixels import quantize
from training.artifacts import labelled_grid, plot_losses, write_gif
from training.augment import diff_augment, parse_policy
from training.data import load_split
from training.device import resolve_device
from training.losses import d_loss, g_loss, mode_seeking, r1_penalty

log = logging.getLogger(__name__)

STATE_NAME = "state.pt"
OPTIONS_NAME = "options.json"
GRID_COLUMNS = 10


DEFAULT_AUX_WEIGHT = 0.5
CPU_BATCH, GPU_BATCH = 64, 256  # the automatic batch size per device (TrainOptions.batch_size)


@dataclass
class TrainOptions:
    out: str
    data_dir: str | None = None
    dataset: str = "fashion-mnist"
    epochs: int = 20
    # None: the device's own, 64 on the CPU and 256 on CUDA; an automatic 256 also scales both learning rates
    # by sqrt(256 / 64) = 2, the square-root rule for Adam. An explicit batch size keeps the rates as given.
    batch_size: int | None = None
    lr_g: float = 2e-4  # Adam learning rates
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    z_dim: int = 128
    channels: int = 32  # network width at 28x28, for both G and D
    loss: str = "hinge"
    ema: float = 0.999  # decay of G's weight average per step; 0 turns it off
    d_gate: float | None = None  # skip D's step when it calls more than this fraction of fakes fake
    unconditional: bool = False
    # Weight of the auxiliary class loss (AC-GAN style); 0: projection only. None: the default, 0.5 for a
    # conditional run (measured: GAN-test 50% against 33% without it after 2 epochs), 0 for an unconditional one.
    aux_weight: float | None = None
    # Diversity: differentiable augmentation of D's inputs ("translation,cutout,color"; training.augment),
    # R1 penalty weight gamma on real images (0: off), mode-seeking term weight (0: off), and the final
    # fraction of the run over which both learning rates decay linearly to zero (0: constant).
    diffaugment: str = ""
    r1_gamma: float = 0.0
    ms_weight: float = 0.0
    lr_decay: float = 0.0
    # Start from trained weights: a directory holding generator/ and discriminator/ checkpoints (a run
    # directory, or models/weights). Their architecture must match the options; D's class head is dropped
    # or started fresh when the options want it and the checkpoint has not.
    init: str | None = None
    seed: int = 0
    device: str = "auto"
    limit: int | None = None  # first N training images only (smoke runs)
    eval_every: int = 0  # epochs between FID / GAN-test evaluations; 0: never
    eval_samples_per_class: int = 100
    classifier: str | None = None  # reference classifier for --eval-every (default: the shipped one)
    snapshot_epochs: list[int] = field(default_factory=list)  # also export generator-epochNNN/ after these
    log_every: int = 50  # steps between steps.jsonl lines
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_to_device(opts: TrainOptions, device: torch.device) -> None:
    """Fill in an automatic batch size (None) for the device: CPU_BATCH on the CPU; GPU_BATCH on CUDA, where
    both learning rates are scaled by sqrt(GPU_BATCH / CPU_BATCH) (the square-root rule for Adam). An explicit
    batch size leaves the options as they are. The options then record what the run really used."""
    if opts.batch_size is not None:
        return
    opts.batch_size = GPU_BATCH if device.type == "cuda" else CPU_BATCH
    scale = math.sqrt(opts.batch_size / CPU_BATCH)
    opts.lr_g, opts.lr_d = opts.lr_g * scale, opts.lr_d * scale


def code_version() -> str:
    """The git commit of the code, when it runs from a checkout; else the package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fashion-gan")
    except PackageNotFoundError:
        return "unknown"


@torch.no_grad()
def refresh_bn_stats(generator: Generator, *, batches: int = 16, batch_size: int = 250, seed: int = 0) -> None:
    """Recompute G's batch-norm statistics for eval mode ("standing statistics").

    The averaged (EMA) weights never ran in train mode, so the running statistics
    collected by the raw G do not describe them. Sampling in eval mode also makes
    each image independent of the others in its batch, which serving needs.
    """
    device = next(generator.parameters()).device
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all refresh batches
    generator.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        z = torch.randn(batch_size, generator.z_dim, generator=gen).to(device)
        y = torch.arange(batch_size) % max(generator.config.num_classes, 1)
        generator(z, y.to(device) if generator.conditional else None)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    generator.eval()


class RunState:
    """What every trainer with a run directory shares: its resume state, written atomically, and its logs cut
    back to the resume point. A subclass has ``run_dir``, ``step`` and ``state_dict()``."""

    run_dir: Path
    step: int

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def save_state(self) -> None:
        tmp = self.run_dir / f".{STATE_NAME}.tmp"
        torch.save(self.state_dict(), tmp)
        tmp.replace(self.run_dir / STATE_NAME)

    def _truncate_logs(self) -> None:
        """Drop log lines written after the resume point (by a run killed mid-epoch)."""
        for name in ("stats.jsonl", "steps.jsonl"):
            path = self.run_dir / name
            if path.exists():
                lines = [line for line in path.read_text().splitlines() if line.strip()]
                kept = [line for line in lines if json.loads(line)["step"] <= self.step]
                if len(kept) != len(lines):
                    path.write_text("".join(line + "\n" for line in kept))


class Trainer(RunState):
    """One GAN run: build or resume, then train epoch by epoch."""

    def __init__(self, opts: TrainOptions) -> None:
        self.opts = opts
        self.run_dir = Path(opts.out)
        self.device = resolve_device(opts.device)
        if opts.loss not in ("hinge", "bce"):
            raise ValueError(f"unknown loss {opts.loss!r}; expected hinge or bce")
        if opts.d_gate is not None and not 0.0 < opts.d_gate <= 1.0:
            raise ValueError("--d-gate must be a fraction in (0, 1]")
        fit_to_device(opts, self.device)
        if opts.batch_size < 2:
            raise ValueError("--batch-size must be at least 2")
        if opts.aux_weight is None:
            opts.aux_weight = 0.0 if opts.unconditional else DEFAULT_AUX_WEIGHT
        if opts.aux_weight < 0 or (opts.aux_weight and opts.unconditional):
            raise ValueError("--aux-weight must be >= 0, and 0 for an unconditional run (it has no classes)")
        self.augment = parse_policy(opts.diffaugment)
        if opts.r1_gamma < 0 or opts.ms_weight < 0:
            raise ValueError("--r1-gamma and --ms-weight must be >= 0")
        if not 0.0 <= opts.lr_decay <= 1.0:
            raise ValueError("--lr-decay must be a fraction of the run in [0, 1]")
        num_classes = 0 if opts.unconditional else len(NAMES)
        torch.manual_seed(opts.seed)
        self.G = Generator(GeneratorConfig(z_dim=opts.z_dim, num_classes=num_classes, channels=opts.channels))
        self.D = Discriminator(
            DiscriminatorConfig(num_classes=num_classes, channels=opts.channels, aux_classifier=opts.aux_weight > 0)
        )
        if opts.init:
            self._load_init(Path(opts.init))
        self.G.to(self.device)
        self.D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if opts.ema > 0 else None
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opts.lr_g, betas=(opts.beta1, opts.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opts.lr_d, betas=(opts.beta1, opts.beta2))
        self.rng = torch.Generator(device=self.device).manual_seed(opts.seed)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.best_fid = float("inf")
        # Fixed noise for the per-epoch grids: one row per class, the same columns in every row.
        self.grid_z = noise(list(range(GRID_COLUMNS)), opts.z_dim).repeat(len(NAMES), 1)
        self.grid_y = torch.arange(len(NAMES)).repeat_interleave(GRID_COLUMNS)

    def _load_init(self, directory: Path) -> None:
        G = load_model(directory / "generator", expected=Generator)
        D = load_model(directory / "discriminator", expected=Discriminator)
        for mine, theirs, what in ((self.G.config, G.config, "generator"), (self.D.config, D.config, "discriminator")):
            differ = {
                k: (getattr(theirs, k), v)
                for k, v in vars(mine).items()
                if k != "aux_classifier" and getattr(theirs, k) != v
            }
            if differ:
                raise ValueError(
                    f"--init {directory}: its {what} does not match the options "
                    + ", ".join(f"{k} {a} (options: {b})" for k, (a, b) in differ.items())
                )
        self.G.load_state_dict(G.state_dict())
        own = self.D.state_dict()
        kept = {k: v for k, v in D.state_dict().items() if k in own}
        missing = self.D.load_state_dict(kept, strict=False).missing_keys
        if any(not k.startswith("aux.") for k in missing):
            raise ValueError(f"--init {directory}: its discriminator lacks {missing}")

    # Resume state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "epoch": torch.tensor(self.epoch),
            "step": torch.tensor(self.step),
            "best_fid": torch.tensor(self.best_fid, dtype=torch.float64),
        }
        if self.G_ema is not None:
            state["G_ema"] = self.G_ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.best_fid = float(state["best_fid"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])

    @classmethod
    def resume(cls, run_dir: str | Path, *, epochs: int | None = None, device: str | None = None) -> Trainer:
        """Rebuild a run from its options.json and state.pt; optionally train to more epochs."""
        run_dir = Path(run_dir)
        try:
            saved = json.loads((run_dir / OPTIONS_NAME).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{run_dir / OPTIONS_NAME}: missing; is {run_dir} a run directory?") from None
        saved["out"] = str(run_dir)
        saved.setdefault("aux_weight", 0.0)  # runs from before the option had no class head
        if epochs is not None:
            saved["epochs"] = epochs
        if device is not None:
            saved["device"] = device
        trainer = cls(TrainOptions(**saved))
        state_path = run_dir / STATE_NAME
        if not state_path.exists():
            raise FileNotFoundError(f"{state_path}: missing; the run stopped before its first epoch ended")
        state = torch.load(state_path, map_location=trainer.device, weights_only=True)
        trainer.load_state_dict(state)
        trainer._truncate_logs()
        log.info("resumed %s after epoch %d (step %d)", run_dir, trainer.epoch, trainer.step)
        return trainer

    # Training -----------------------------------------------------------------------------------
    def _sample_labels(self, n: int) -> torch.Tensor | None:
        if self.opts.unconditional:
            return None
        return torch.randint(0, len(NAMES), (n,), generator=self.rng, device=self.device)

    def _paired_labels(self, n: int) -> torch.Tensor | None:
        """Labels whose second half repeats the first (for the mode-seeking pairs); one more when n is odd."""
        if self.opts.unconditional:
            return None
        half = self._sample_labels(n // 2)
        return torch.cat([half, half, self._sample_labels(n % 2)])

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.augment, self.rng) if self.augment else x

    def _set_learning_rates(self, steps_per_epoch: int) -> None:
        """Both learning rates, decayed linearly to 0 over the run's last opts.lr_decay (a function of the step,
        so a resumed run follows the same schedule)."""
        opts = self.opts
        if not opts.lr_decay:
            return
        total = opts.epochs * steps_per_epoch
        left = max(total - self.step, 0)
        factor = min(1.0, left / (opts.lr_decay * total))
        for optimizer, base in ((self.opt_g, opts.lr_g), (self.opt_d, opts.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    def _exported_generator(self) -> Generator:
        return self.G_ema if self.G_ema is not None else self.G

    def train(self) -> dict[str, Any]:
        """Train until opts.epochs; return the last epoch's statistics."""
        opts, dev = self.opts, self.device
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        # Write the options before the first step.
        (self.run_dir / OPTIONS_NAME).write_text(json.dumps(opts.to_json(), indent=2) + "\n")

        # Load the data set once, onto the training device.
        train = load_split("train", opts.dataset, opts.data_dir, limit=opts.limit).to(dev)
        n = len(train)
        steps_per_epoch = n // opts.batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"{n} training images are fewer than one batch of {opts.batch_size}")
        evaluator = self._make_evaluator() if opts.eval_every else None

        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None)
        amp = (
            torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
        )
        last: dict[str, Any] = {}
        try:
            while self.epoch < opts.epochs:
                last = self._train_epoch(train, steps_per_epoch, amp, writer, evaluator)
        finally:
            writer.close()
        return last

    def _train_epoch(self, train, steps_per_epoch, amp, writer, evaluator) -> dict[str, Any]:
        opts, dev = self.opts, self.device
        epoch = self.epoch + 1
        B = opts.batch_size
        perm = torch.randperm(len(train), generator=self.rng, device=dev)
        sums = torch.zeros(4, device=dev)  # loss_d, loss_g, D(real), D(fake) summed over the epoch
        window, window_steps = torch.zeros(4, device=dev), 0  # the same since the last steps.jsonl line
        skipped = 0
        started = time.perf_counter()
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{opts.epochs}",
            disable=not opts.progress,
            leave=False,
        )
        for i in bar:
            idx = perm[i * B : (i + 1) * B]
            real = to_float(train.images[idx]).unsqueeze(1)  # (B, 1, 28, 28)
            y_real = None if opts.unconditional else train.labels[idx]
            self._set_learning_rates(steps_per_epoch)

            # Update D.
            z = torch.randn(B, opts.z_dim, generator=self.rng, device=dev)
            y_fake = self._sample_labels(B)
            with torch.no_grad(), amp:
                fake = self.G(z, y_fake)
            real, fake = self._augment(real), self._augment(fake)
            if opts.r1_gamma:
                real.requires_grad_(True)
            with amp:
                if opts.aux_weight:
                    real_logits, real_classes = self.D.forward_with_classes(real, y_real)
                    real_logits = real_logits.float()
                else:
                    real_logits = self.D(real, y_real).float()
                fake_logits = self.D(fake, y_fake).float()
                loss_d = d_loss(real_logits, fake_logits, opts.loss)
                if opts.aux_weight:  # D learns the classes from real images only
                    loss_d = loss_d + opts.aux_weight * F.cross_entropy(real_classes.float(), y_real)
            if opts.r1_gamma:
                loss_d = loss_d + 0.5 * opts.r1_gamma * r1_penalty(real_logits, real)
            if opts.d_gate is not None and (fake_logits < 0).float().mean().item() > opts.d_gate:
                skipped += 1  # D already wins on this batch: let G catch up
            else:
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()

            # Update G.
            z = torch.randn(B, opts.z_dim, generator=self.rng, device=dev)
            y_fake = self._paired_labels(B) if opts.ms_weight else self._sample_labels(B)
            with amp:
                fake = self.G(z, y_fake)
                seen = self._augment(fake)
                if opts.aux_weight:
                    logits, classes = self.D.forward_with_classes(seen, y_fake)
                    loss_g = g_loss(logits.float(), opts.loss)
                    loss_g = loss_g + opts.aux_weight * F.cross_entropy(classes.float(), y_fake)
                else:
                    loss_g = g_loss(self.D(seen, y_fake).float(), opts.loss)
                if opts.ms_weight:  # the two halves of the batch share their labels, pair by pair
                    h = B // 2
                    loss_g = loss_g + opts.ms_weight * mode_seeking(
                        fake[:h].float(), fake[h : 2 * h].float(), z[:h], z[h : 2 * h]
                    )
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()

            # Update G_ema.
            if self.G_ema is not None:
                with torch.no_grad():
                    for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                        p_ema.lerp_(p, 1.0 - opts.ema)

            self.step += 1
            stats = torch.stack(
                [loss_d.detach(), loss_g.detach(), real_logits.mean().detach(), fake_logits.mean().detach()]
            )
            sums += stats
            window += stats
            window_steps += 1
            if self.step % opts.log_every == 0 or i == steps_per_epoch - 1:
                # Log the mean over the steps since the last line: single-step GAN losses are too noisy to read.
                self._log_step(window / window_steps, writer, bar, (i + 1) * B / (time.perf_counter() - started))
                window.zero_()
                window_steps = 0

        # Summarize the epoch.
        self.epoch = epoch
        seconds = time.perf_counter() - started
        means = (sums / steps_per_epoch).tolist()
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": self.step,
            "loss_d": means[0],
            "loss_g": means[1],
            "d_real": means[2],
            "d_fake": means[3],
            "d_skipped_steps": skipped,
            "images_per_s": steps_per_epoch * B / seconds,
            "seconds": seconds,
        }
        G_out = self._exported_generator()
        refresh_bn_stats(G_out, seed=opts.seed)
        if evaluator is not None and epoch % opts.eval_every == 0:
            figures = evaluator(G_out)
            record.update(figures)
            for key, value in figures.items():
                writer.add_scalar(f"eval/{key}", value, self.step)
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s"):
            writer.add_scalar(f"epoch/{key}", record[key], self.step)
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info(
            "epoch %d/%d: loss_d %.3f loss_g %.3f, %.0f img/s%s",
            epoch,
            opts.epochs,
            record["loss_d"],
            record["loss_g"],
            record["images_per_s"],
            "".join(f", {k} {record[k]:.4g}" for k in ("fid", "gan_test") if k in record),
        )

        # Save samples, curves, checkpoints and resume state.
        self._write_grid(G_out, epoch)
        self._export(G_out, record)
        self.save_state()
        return record

    def _log_step(self, stats: torch.Tensor, writer, bar, images_per_s: float) -> None:
        loss_d, loss_g, d_real, d_fake = stats.tolist()
        row = {
            "step": self.step,
            "epoch": self.epoch + 1,
            "loss_d": loss_d,
            "loss_g": loss_g,
            "d_real": d_real,
            "d_fake": d_fake,
        }
        with open(self.run_dir / "steps.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        writer.add_scalar("loss/d", loss_d, self.step)
        writer.add_scalar("loss/g", loss_g, self.step)
        bar.set_postfix(loss_d=f"{loss_d:.3f}", loss_g=f"{loss_g:.3f}", img_s=f"{images_per_s:.0f}")

    @torch.no_grad()
    def _write_grid(self, G_out: Generator, epoch: int) -> None:
        y = self.grid_y.to(self.device) if G_out.conditional else None
        images = quantize(G_out(self.grid_z.to(self.device), y)).squeeze(1)  # (100, 28, 28) uint8
        rows = list(NAMES) if G_out.conditional else [""] * len(NAMES)
        path = self.run_dir / "samples" / f"epoch_{epoch:03d}.png"
        labelled_grid(images, rows, title=f"epoch {epoch}").save(path)
        write_gif(sorted((self.run_dir / "samples").glob("epoch_*.png")), self.run_dir / "progress.gif")
        plot_losses(self.run_dir / "steps.jsonl", self.run_dir / "losses.png")

    def _export(self, G_out: Generator, record: dict[str, Any]) -> None:
        opts = self.opts
        facts = {
            "dataset": opts.dataset,
            "train_images": opts.limit or "all",
            "epochs": self.epoch,
            "steps": self.step,
            "batch_size": opts.batch_size,
            "loss": opts.loss,
            "lr_g": opts.lr_g,
            "lr_d": opts.lr_d,
            "ema": opts.ema,
            "d_gate": opts.d_gate,
            "aux_weight": opts.aux_weight,
            "init": opts.init,
            "diffaugment": opts.diffaugment,
            "r1_gamma": opts.r1_gamma,
            "ms_weight": opts.ms_weight,
            "lr_decay": opts.lr_decay,
            "seed": opts.seed,
            "device": str(self.device),
            "code_version": code_version(),
            "torch": torch.__version__,
        }
        evals = {k: record[k] for k in ("fid", "gan_test") if k in record}
        save_model(
            G_out,
            self.run_dir / "generator",
            training={**facts, "weights": "ema" if self.G_ema else "raw"},
            metrics=evals,
        )
        save_model(self.D, self.run_dir / "discriminator", training=facts)
        if "fid" in record and record["fid"] < self.best_fid:
            self.best_fid = record["fid"]
            save_model(G_out, self.run_dir / "generator-best", training=facts, metrics=evals)
        if self.epoch in opts.snapshot_epochs:
            save_model(G_out, self.run_dir / f"generator-epoch{self.epoch:03d}", training=facts, metrics=evals)

    def _make_evaluator(self):
        """FID and GAN-test on the real test set with the reference classifier, every --eval-every epochs."""
        from models import WEIGHTS_DIR, load_model
        from training.evaluation import cheap_metrics  # the evaluation module, imported only when asked

        opts = self.opts
        classifier = load_model(opts.classifier or WEIGHTS_DIR / "classifier", device=self.device)
        test = load_split("test", opts.dataset, opts.data_dir).to(self.device)

        def evaluate(G_out: Generator) -> dict[str, float]:
            return cheap_metrics(
                G_out,
                classifier,
                test,
                samples_per_class=opts.eval_samples_per_class,
                seed=opts.seed,
                device=self.device,
            )

        return evaluate


def train(opts: TrainOptions) -> dict[str, Any]:
    """Build a fresh run and train it."""
    return Trainer(opts).train()
