"""The `evaluate` pipeline: every image-quality and detection figure of a generator, beside its real-data reference.

Sections, each a metric that can be asked for by name (``METRICS``):
  fid               FID in the reference classifier's feature space; floor: real train vs real test
  gan_test          the classifier's accuracy on generated images w.r.t. the requested label; beside it, on real test
  precision_recall  k-NN manifold precision and recall, overall and within each class; reference: real train vs
                    real test
  gan_train         a fresh classifier (lean recipe) trained on generated images, tested on real, overall and per
                    class; beside it, on real
  detection         each given discriminator / detector on real test vs fresh generated images
and, when asked, the standard Inception FID at one or more sample sizes (10,000 vs the 10,000 test images is the
field's protocol), its features kept in a resumable cache.

``truncation`` (psi) samples every generated set with the latents pulled toward the prior's mean
(``models.truncate``, the service's own function); ``truncation_curve`` measures several psi side by side.

Every generated image is quantized to uint8 first, exactly as the service would
serve it. Every random choice draws from a generator seeded from ``seed`` and the
purpose (evaluation set, detection set, GAN-train set), so a seed fixes the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models import WEIGHTS_DIR, Classifier, Generator, load_model, read_temperature, update_metrics
from models.latents import check_truncation, truncate
from models.pixels import quantize, to_float
from training import data as training_data
from training.data import Split, load_split
from training.device import resolve_device
from training.metrics import inception
from training.metrics.detection import detection_figures_from_logits
from training.metrics.feature_cache import DEFAULT_CHUNK
from training.metrics.features import embed, evaluating
from training.metrics.fid import fid_from_features
from training.metrics.gan_test import ClassAccuracy, class_accuracy, class_names, gan_test
from training.metrics.gan_train import LEAN_RECIPE, Recipe, train_and_test
from training.metrics.precision_recall import DEFAULT_K, PrecisionRecall, per_class_precision_recall, precision_recall

log = logging.getLogger(__name__)

METRICS = ("fid", "gan_test", "precision_recall", "gan_train", "detection")
MIN_DETECTION_PER_SIDE = 1000  # at least 2,000 images in all, half real and half generated
NOT_CONDITIONAL = "not applicable: the generator is unconditional, so its images have no requested label"


# Sampling ----------------------------------------------------------------------------------------


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose ("eval", "detection", ...), so that the sets drawn from one seed differ."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """(n,) int64 labels 0, 1, ..., C-1, 0, 1, ...: every class n // C or n // C + 1 times."""
    return torch.arange(n) % num_classes


@torch.no_grad()
def generate_uint8(
    generator: Generator,
    labels: torch.Tensor,
    seed: int,
    device: str | torch.device,
    batch_size: int = 500,
    truncation: float = 1.0,
) -> torch.Tensor:
    """Fresh generated images for (N,) labels, quantized exactly as served: uint8 (N, 28, 28) on the CPU.

    The latents are drawn at once from a CPU generator seeded with ``seed``, and G
    runs in eval mode, so the images do not depend on the device's RNG, the batch
    size, or what else is in the batch. Unconditional generators ignore ``labels``
    (only their count matters). ``truncation`` (psi, 0 < psi <= 1) pulls every latent
    toward the prior's mean as the service does (``models.truncate``); 1 leaves them as drawn.
    """
    n = int(labels.shape[0])
    rng = torch.Generator().manual_seed(seed)
    z = truncate(torch.randn(n, generator.config.z_dim, generator=rng), truncation)  # (N, z_dim)
    conditional = generator.config.num_classes > 0
    out = []
    with evaluating(generator):
        for start in range(0, n, batch_size):
            zb = z[start : start + batch_size].to(device)
            yb = labels[start : start + batch_size].to(device) if conditional else None
            out.append(quantize(generator(zb, yb)).squeeze(1).cpu())  # (b, 28, 28) uint8
    return torch.cat(out) if out else torch.empty(0, 28, 28, dtype=torch.uint8)


def balanced_indices(labels: torch.Tensor, counts: Sequence[int], seed: int) -> torch.Tensor:
    """(n,) int64 indices of a seeded random subset with ``counts[c]`` items of class c (all where fewer)."""
    rng = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    picked = []
    for c, want in enumerate(counts):
        idx = torch.nonzero(labels == c).squeeze(1)  # (n_c,)
        picked.append(idx[torch.randperm(idx.numel(), generator=rng)[:want]])
    return torch.cat(picked)


def balanced_subset(split: Split, counts: Sequence[int], seed: int) -> Split:
    """A seeded random subset with ``counts[c]`` images of class c (all of them where a class has fewer)."""
    index = balanced_indices(split.labels, counts, seed)
    return Split(split.images.cpu()[index], split.labels.cpu()[index])


def class_counts(n: int, num_classes: int) -> list[int]:
    """How ``balanced_labels(n, C)`` spreads n over the classes."""
    return torch.bincount(balanced_labels(n, num_classes), minlength=num_classes).tolist()


def balanced_draw(split: Split, n: int, seed: int, stream: str, num_classes: int) -> Split:
    """``n`` images of ``split`` spread over the classes as ``balanced_labels`` spreads them, picked by the seeded
    stream ``stream``: each figure draws from its own, so that a report's images are drawn again exactly."""
    return balanced_subset(split, class_counts(n, num_classes), stream_seed(seed, stream))


def balanced_draw_indices(split: Split, n: int, seed: int, stream: str, num_classes: int) -> torch.Tensor:
    """The indices into ``split`` of ``balanced_draw(split, n, seed, stream, num_classes)``."""
    return balanced_indices(split.labels, class_counts(n, num_classes), stream_seed(seed, stream))


# The cheap figures, during training -------------------------------------------------------------


def cheap_metrics(
    generator: Generator,
    classifier: Classifier,
    real_test: Split,
    *,
    samples_per_class: int,
    seed: int,
    device: str | torch.device,
) -> dict[str, float]:
    """FID against ``real_test`` and GAN-test accuracy (0-1) of ``samples_per_class`` images per class.

    What the training loop logs every --eval-every epochs. Deterministic for a seed,
    and it touches no global RNG, so training continues exactly as without it. An
    unconditional generator gets no "gan_test" key (it has no requested labels).
    With few samples FID is biased upwards: compare values measured with the same
    ``samples_per_class`` only.
    """
    num_classes = classifier.config.num_classes
    _check_pair(generator, classifier)
    labels = balanced_labels(samples_per_class * num_classes, num_classes)
    fakes = generate_uint8(generator, labels, stream_seed(seed, "eval"), device)
    fake = embed(classifier, fakes, device=device)
    real = embed(classifier, real_test.images, device=device)
    out = {"fid": fid_from_features(fake.features, real.features)}
    if generator.config.num_classes:
        out["gan_test"] = gan_test(fake.logits, labels).overall
    return out


def _check_pair(generator: Generator, classifier: Classifier) -> None:
    g, c = generator.config.num_classes, classifier.config.num_classes
    if g and g != c:
        raise ValueError(f"the generator has {g} classes but the reference classifier has {c}")


# The full evaluation ----------------------------------------------------------------------------


@dataclass
class EvalOptions:
    generator: str
    discriminators: list[str] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)
    classifier: str | None = None  # default: the shipped models/weights/classifier
    samples_per_class: int = 1000  # generated images per class for FID, GAN-test, precision/recall
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    dataset: str = "fashion-mnist"
    metrics: tuple[str, ...] = METRICS
    k: int = DEFAULT_K  # neighbours for precision/recall
    gan_train_images: int = 10_000  # generated (and real) images for GAN-train; 0 skips it
    detection_images: int = 5_000  # real test images, and as many generated ones, per detector
    inception: bool = False
    # Generated images for Inception FID, one figure per size; each against as many real test images (the whole
    # test set from its size up). 10,000 vs 10,000 is the field's protocol; 2,000 vs 2,000 this project's earlier one.
    inception_samples: Sequence[int] | int = (2_000, 10_000)
    inception_cache: str | None = None  # default: <cache>/fashion-gan/inception (XDG_CACHE_HOME or ~/.cache)
    inception_chunk: int = DEFAULT_CHUNK  # images per saved chunk of Inception features
    batch_size: int = 500
    truncation: float = 1.0  # psi of every generated set (models.truncate); 1 = as trained


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        log.info("evaluate: %s ...", name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 2)


@torch.no_grad()
def score_real_fake(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch_size: int = 500
) -> torch.Tensor:
    """A discriminator's or detector's (N,) logits (positive = real) for uint8 (N, 28, 28) images."""
    out = []
    with evaluating(model):
        for start in range(0, images.shape[0], batch_size):
            x = to_float(images[start : start + batch_size].to(device)).unsqueeze(1)  # (b, 1, 28, 28)
            logits = model(x, labels[start : start + batch_size].to(device))
            if not isinstance(logits, torch.Tensor) or logits.shape != (x.shape[0],):
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise ValueError(f"{type(model).__name__} returned {shape}; expected one logit per image")
            out.append(logits.float().cpu())
    return torch.cat(out)


def _load_scorer(path: str, device: torch.device) -> nn.Module:
    """Load a discriminator or detector: any checkpoint except the generator and classifier kinds."""
    model = load_model(path, device=device)  # expected=None: Discriminator today, a Detector class later
    if isinstance(model, (Generator, Classifier)):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a real/fake discriminator or detector")
    return model


def _detection(
    opts: EvalOptions,
    scorers: list[tuple[str, str, nn.Module]],
    generator: Generator,
    test: Split,
    device: torch.device,
    num_classes: int,
) -> list[dict[str, Any]]:
    """Detection figures of each (kind, path, model) on one balanced set of real and fresh generated images."""
    if not scorers:
        return []
    # One balanced set for every model: real test images, and as many fresh fakes with the same labels.
    n = min(opts.detection_images, len(test))
    if n < MIN_DETECTION_PER_SIDE:
        log.warning("detection on only %d real + %d generated images: the test set is that small", n, n)
    real = balanced_draw(test, n, opts.seed, "detection-real", num_classes)
    fakes = generate_uint8(
        generator,
        real.labels,
        stream_seed(opts.seed, "detection"),
        device,
        batch_size=opts.batch_size,
        truncation=opts.truncation,
    )
    images = torch.cat([real.images, fakes])  # (2n, 28, 28): real first
    labels = torch.cat([real.labels, real.labels])  # a fake carries the label it was generated for
    targets = torch.cat([torch.ones(len(real)), torch.zeros(len(fakes))])  # 1 = real
    results = []
    for kind, path, model in scorers:
        temperature = read_temperature(model.checkpoint, path, default=1.0)
        logits = score_real_fake(model, images, labels, device, opts.batch_size)
        figures = detection_figures_from_logits(logits.numpy(), targets.numpy(), temperature=temperature)
        training = model.checkpoint.get("training") or {}
        results.append(
            {
                "kind": kind,
                "path": str(path),
                "class_name": type(model).__name__,
                "trained_epochs": training.get("epochs"),
                "trained_steps": training.get("steps"),
                "temperature": temperature,
                **figures.to_json(),
            }
        )
        log.info(
            "%s %s: accuracy %.4f, ROC AUC %.4f, ECE %.4f",
            kind,
            path,
            figures.accuracy,
            figures.roc_auc,
            figures.ece,
        )
    return results


def evaluate(opts: EvalOptions, *, progress: bool = False) -> dict[str, Any]:
    """Measure one generator checkpoint; return the report as a JSON-ready dict."""
    unknown = set(opts.metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; expected some of {', '.join(METRICS)}")
    if opts.samples_per_class < 2:
        raise ValueError("--samples-per-class must be at least 2")
    has_scorers = bool(opts.discriminators or opts.detectors)
    if "detection" in opts.metrics and has_scorers and opts.detection_images < MIN_DETECTION_PER_SIDE:
        raise ValueError(f"detection needs at least {MIN_DETECTION_PER_SIDE} real images (and as many fakes)")
    if opts.inception:
        inception_sizes(opts.inception_samples)  # fail before any work
        if not inception.available():
            raise inception.InceptionUnavailable(inception.UNAVAILABLE)
    if opts.gan_train_images < 0:
        raise ValueError("--gan-train-images must be 0 (skip) or more")
    psi = check_truncation(opts.truncation)
    timer = _Timer()
    started = time.perf_counter()
    device = resolve_device(opts.device)
    wanted = set(opts.metrics)

    # Load the models and the real data.
    with timer.section("load"):
        classifier_dir = opts.classifier or str(WEIGHTS_DIR / "classifier")
        generator = load_model(opts.generator, expected=Generator, device=device)
        classifier = load_model(classifier_dir, expected=Classifier, device=device)
        _check_pair(generator, classifier)
        scorers = [
            (kind, path, _load_scorer(path, device))
            for kind, paths in (("discriminator", opts.discriminators), ("detector", opts.detectors))
            for path in paths
        ]
        test = load_split("test", opts.dataset, opts.data_dir)
        train = load_split("train", opts.dataset, opts.data_dir)
    num_classes = classifier.config.num_classes
    conditional = generator.config.num_classes > 0
    n_gen = opts.samples_per_class * num_classes

    # Generate the evaluation set and embed it with the real references.
    with timer.section("generate"):
        labels = balanced_labels(n_gen, num_classes)
        fakes = generate_uint8(generator, labels, stream_seed(opts.seed, "eval"), device, opts.batch_size, psi)
    with timer.section("embed"):
        reference = balanced_subset(
            train, [opts.samples_per_class] * num_classes, stream_seed(opts.seed, "train-reference")
        )
        fake_emb = embed(classifier, fakes, device=device, batch_size=opts.batch_size)
        test_emb = embed(classifier, test.images, device=device, batch_size=opts.batch_size)
        ref_emb = embed(classifier, reference.images, device=device, batch_size=opts.batch_size)

    report: dict[str, Any] = {
        "generator": str(opts.generator),
        "generator_class": type(generator).__name__,
        "conditional": conditional,
        "generator_training": generator.checkpoint.get("training") or {},
        "classifier": _display_path(classifier_dir),
        "classifier_test_accuracy": (classifier.checkpoint.get("metrics") or {}).get("test_accuracy"),
        "dataset": opts.dataset,
        "seed": opts.seed,
        "samples_per_class": opts.samples_per_class,
        "truncation": psi,
        "generated_images": n_gen,
        "real_test_images": len(test),
        "real_train_reference_images": len(reference),
        "feature_space": f"reference classifier penultimate layer ({classifier.config.feature_dim}-d)",
        "device": str(device),
        "threads": torch.get_num_threads(),
    }

    if "fid" in wanted:
        with timer.section("fid"):
            report["fid"] = {
                "generated_vs_test": fid_from_features(fake_emb.features, test_emb.features),
                "train_vs_test": fid_from_features(ref_emb.features, test_emb.features),
            }

    if "gan_test" in wanted:
        with timer.section("gan_test"):
            real_acc = class_accuracy(test_emb.predictions, test.labels, num_classes)
            report["gan_test"] = {
                "generated": gan_test(fake_emb.logits, labels).to_json() if conditional else None,
                "real_test": real_acc.to_json(),
                **({} if conditional else {"note": NOT_CONDITIONAL}),
            }

    if "precision_recall" in wanted:
        with timer.section("precision_recall"):
            report["precision_recall"] = {
                "generated": precision_recall(test_emb.features, fake_emb.features, k=opts.k).to_json(),
                "train_reference": precision_recall(test_emb.features, ref_emb.features, k=opts.k).to_json(),
                "per_class": (
                    _per_class_precision_recall(
                        test_emb.features,
                        test.labels,
                        fake_emb.features,
                        labels,
                        ref_emb.features,
                        reference.labels,
                        num_classes,
                        opts.k,
                    )
                    if conditional
                    else None
                ),
                **({} if conditional else {"per_class_note": NOT_CONDITIONAL}),
            }

    if "gan_train" in wanted and opts.gan_train_images:
        with timer.section("gan_train"):
            report["gan_train"] = _gan_train(opts, generator, train, test, device, num_classes, conditional)

    if "detection" in wanted:
        with timer.section("detection"):
            report["detection"] = _detection(opts, scorers, generator, test, device, num_classes)

    if opts.inception:
        with timer.section("inception"):
            report["inception_fid"] = _inception(opts, generator, fakes, test, device, num_classes, progress)

    timer.seconds["total"] = round(time.perf_counter() - started, 2)
    report["seconds"] = timer.seconds
    return report


def truncation_curve(opts: EvalOptions, psis: Sequence[float], *, progress: bool = False) -> dict[str, Any]:
    """The fidelity-diversity curve: ``evaluate`` at each truncation psi, the same seed and latents (scaled).

    Returns ``{"truncation_curve": [one row of headline figures per psi], "reports": [the full reports]}``
    with the settings they share; ``render_curve_markdown`` turns it into a table.
    """
    values = [check_truncation(psi) for psi in psis]
    if not values:
        raise ValueError("truncation_curve needs at least one truncation value")
    started = time.perf_counter()
    reports = []
    for psi in values:
        log.info("evaluate: truncation %g", psi)
        reports.append(evaluate(replace(opts, truncation=psi), progress=progress))
    first = reports[0]
    shared = ("generator", "classifier", "dataset", "seed", "samples_per_class", "generated_images", "feature_space")
    rows = [{"truncation": r["truncation"], **headline(r)} for r in reports]
    reference: dict[str, Any] = {}
    if "precision_recall" in first:
        reference |= {k: first["precision_recall"]["train_reference"][k] for k in ("precision", "recall")}
        reference["k"] = first["precision_recall"]["generated"]["k"]
    if "fid" in first:
        reference["fid"] = first["fid"]["train_vs_test"]
    if first.get("gan_test", {}).get("real_test"):
        reference["gan_test"] = first["gan_test"]["real_test"]["overall"]
    return {
        **{k: first[k] for k in shared},
        "metrics": list(opts.metrics),
        "truncation_curve": rows,
        "real_reference": reference,
        "reports": reports,
        "seconds": {"total": round(time.perf_counter() - started, 2)},
    }


def inception_sizes(samples: Sequence[int] | int) -> tuple[int, ...]:
    """``EvalOptions.inception_samples`` as ascending distinct sizes, each at least 2."""
    sizes = tuple(sorted({int(samples)} if isinstance(samples, int) else {int(n) for n in samples}))
    if not sizes or sizes[0] < 2:
        raise ValueError(f"--inception-samples must be one or more sizes of 2 images or more, got {samples}")
    return sizes


def _inception(
    opts: EvalOptions,
    generator: Generator,
    fakes: torch.Tensor,
    test: Split,
    device: torch.device,
    num_classes: int,
    progress: bool,
) -> dict[str, Any]:
    """Inception FID at each requested size: the first n of one generated set against as many real test images.

    The generated set is the evaluation set (its first n images are class-balanced too: labels cycle 0..C-1),
    generated afresh from the same stream when it is smaller than the largest size. From the size of the test
    set up, the real side is the whole test set, whose statistics the cache keeps; below it, a class-balanced
    seeded draw, as before (its features come from the whole set's cached features when those exist).
    """
    sizes = inception_sizes(opts.inception_samples)
    n = sizes[-1]
    if n <= len(fakes):
        incep_fakes = fakes[:n]
    else:
        incep_labels = balanced_labels(n, num_classes)
        eval_stream = stream_seed(opts.seed, "eval")
        incep_fakes = generate_uint8(generator, incep_labels, eval_stream, device, opts.batch_size, opts.truncation)
    subsets = {
        m: None if m >= len(test) else balanced_draw_indices(test, m, opts.seed, "incep", num_classes) for m in sizes
    }
    # Looked up on the module at call time, so that the tests' stand-in cache directory applies here too.
    cache = Path(opts.inception_cache) if opts.inception_cache else training_data.default_cache_dir() / "inception"
    return inception.inception_fids(
        incep_fakes,
        test.images.cpu(),
        subsets,
        cache,
        real_name=f"{opts.dataset}-test",
        device=device,
        chunk_size=opts.inception_chunk,
        progress=progress,
    )


def _per_class_precision_recall(
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    fake_features: torch.Tensor,
    fake_labels: torch.Tensor,
    ref_features: torch.Tensor,
    ref_labels: torch.Tensor,
    num_classes: int,
    k: int,
) -> dict[str, Any]:
    """Precision and recall within each class, for the generated images and for the real training reference."""
    names = class_names(num_classes)

    def figures(features: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float] | None]:
        per_class = per_class_precision_recall(test_features, test_labels, features, labels, num_classes, k=k)
        return {name: _pr_pair(pr) for name, pr in zip(names, per_class, strict=True)}

    def counts(labels: torch.Tensor) -> dict[str, int]:
        return dict(zip(names, torch.bincount(labels.cpu(), minlength=num_classes).tolist(), strict=True))

    return {
        "k": k,
        "generated": figures(fake_features, fake_labels),
        "train_reference": figures(ref_features, ref_labels),
        "images": {
            "real_test": counts(test_labels),
            "generated": counts(fake_labels),
            "train_reference": counts(ref_labels),
        },
    }


def _pr_pair(pr: PrecisionRecall | None) -> dict[str, float] | None:
    return None if pr is None else {"precision": pr.precision, "recall": pr.recall}


def _ratio(generated: ClassAccuracy, real: ClassAccuracy) -> dict[str, Any]:
    """GAN-train relative to the real-data figure, overall and per class (None where real is 0 or missing)."""

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    names = class_names(len(real.per_class))
    return {
        "overall": div(generated.overall, real.overall),
        "per_class": {name: div(g, r) for name, g, r in zip(names, generated.per_class, real.per_class, strict=True)},
    }


def _gan_train(
    opts: EvalOptions,
    generator: Generator,
    train: Split,
    test: Split,
    device: torch.device,
    num_classes: int,
    conditional: bool,
) -> dict[str, Any]:
    recipe: Recipe = LEAN_RECIPE
    n = opts.gan_train_images
    real = balanced_draw(train, n, opts.seed, "gan-train-real", num_classes)
    real_acc = train_and_test(real.images, real.labels, test, recipe, seed=opts.seed, device=device)
    out: dict[str, Any] = {
        "images": n,
        "recipe": recipe.to_json(),
        "real": real_acc.to_json(),
    }
    if not conditional:
        return {**out, "generated": None, "note": NOT_CONDITIONAL}
    labels = balanced_labels(n, num_classes)
    fakes = generate_uint8(
        generator, labels, stream_seed(opts.seed, "gan-train"), device, opts.batch_size, opts.truncation
    )
    gen_acc = train_and_test(fakes, labels, test, recipe, seed=opts.seed, device=device)
    out["generated"] = gen_acc.to_json()
    out["ratio_to_real"] = _ratio(gen_acc, real_acc)
    return out


def _display_path(path: str | os.PathLike) -> str:
    """A path as a report shows it: relative to the working directory when inside it (the default
    classifier is found by an absolute path, which would leak this machine's layout into reports)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# What every headline carries besides figures: how the images were drawn.
HEADLINE_CONTEXT = ("seed", "samples_per_class")


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The few figures worth recording in the generator's config.json."""
    out: dict[str, Any] = {k: report[k] for k in HEADLINE_CONTEXT}
    if report.get("truncation", 1.0) != 1.0:
        out["truncation"] = report["truncation"]
    if "fid" in report:
        out["fid"] = report["fid"]["generated_vs_test"]
        out["fid_train_vs_test"] = report["fid"]["train_vs_test"]
    if report.get("gan_test", {}).get("generated"):
        out["gan_test"] = report["gan_test"]["generated"]["overall"]
    if report.get("gan_train", {}).get("generated"):
        out["gan_train"] = report["gan_train"]["generated"]["overall"]
    if "precision_recall" in report:
        out["precision"] = report["precision_recall"]["generated"]["precision"]
        out["recall"] = report["precision_recall"]["generated"]["recall"]
        lowest = _lowest_recall(report["precision_recall"].get("per_class"), "generated")
        if lowest is not None:
            out["recall_lowest_class"] = lowest[1]
    if "inception_fid" in report:
        out["inception_fid"] = report["inception_fid"]["fid"]
        out["inception_fid_images"] = report["inception_fid"]["generated_images"]
    return out


def _lowest_recall(per_class: dict[str, Any] | None, side: str) -> tuple[str, float] | None:
    """(class name, recall) of the class with the lowest per-class recall on ``side``, or None."""
    measured = [(name, pr["recall"]) for name, pr in (per_class or {}).get(side, {}).items() if pr is not None]
    return min(measured, key=lambda item: item[1]) if measured else None


def record_in_checkpoint(report: dict[str, Any]) -> None:
    """Store the headline figures in the generator's config.json under metrics.evaluation.

    Each measured discriminator or detector gets its detection figures (against this
    generator's fakes) in its own config.json, under the same key. A run that measured none of the
    generator's own figures (``--metrics detection``) leaves the generator's record as it was, rather
    than replacing its FID and GAN-test with nothing.
    """
    if report.get("truncation", 1.0) != 1.0:
        raise ValueError(
            f"not recorded: a checkpoint records its figures as trained (truncation 1), "
            f"this report was measured at truncation {report['truncation']}"
        )
    generator_figures = headline(report)
    if set(generator_figures) - set(HEADLINE_CONTEXT):
        update_metrics(report["generator"], {"evaluation": generator_figures})
    for figures in report.get("detection", []):
        keep = ("accuracy", "accuracy_real", "accuracy_fake", "roc_auc", "ece", "n_real", "n_fake", "temperature")
        entry = {k: figures[k] for k in keep if k in figures}
        update_metrics(
            figures["path"], {"evaluation": {"generator": report["generator"], "seed": report["seed"], **entry}}
        )


# Reports ----------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2, *, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.{digits}f}"


def _fid(value: float) -> str:
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"  # keep a near-zero floor readable


def _truncation_note(report: dict[str, Any]) -> str:
    psi = report.get("truncation", 1.0)
    return "" if psi == 1.0 else f", latents truncated toward the mean with psi {psi:g}"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables: each figure beside its real-data reference."""
    lines = [
        f"# Evaluation of `{report['generator']}`",
        "",
        f"{report['generated_images']:,} generated images ({report['samples_per_class']:,} per class, "
        f"quantized to uint8 as served{_truncation_note(report)}), seed {report['seed']}, on {report['device']}; "
        f"real test set: {report['real_test_images']:,} images; feature space: {report['feature_space']} "
        f"of `{report['classifier']}` (test accuracy {_f(report['classifier_test_accuracy'], percent=True)}).",
        "",
        "| Figure | Generated | Real reference | Reference is |",
        "| --- | ---: | ---: | --- |",
    ]
    if "fid" in report:
        fid = report["fid"]
        lines.append(
            f"| FID, classifier features (lower is better) | {_fid(fid['generated_vs_test'])} | "
            f"{_fid(fid['train_vs_test'])} | {report['real_train_reference_images']:,} real training images vs test |"
        )
    if "precision_recall" in report:
        pr = report["precision_recall"]
        k = pr["generated"]["k"]
        for key in ("precision", "recall"):
            lines.append(
                f"| {key.capitalize()} (k = {k}) | {_f(pr['generated'][key], 3)} | "
                f"{_f(pr['train_reference'][key], 3)} | real training images vs test |"
            )
        gen_low = _lowest_recall(pr.get("per_class"), "generated")
        ref_low = _lowest_recall(pr.get("per_class"), "train_reference")
        if gen_low and ref_low:
            lines.append(
                f"| Recall of the lowest class (k = {k}, within each class) | {_f(gen_low[1], 3)} ({gen_low[0]}) | "
                f"{_f(ref_low[1], 3)} ({ref_low[0]}) | real training images vs test, class by class |"
            )
    if "gan_test" in report:
        gt = report["gan_test"]
        gen = gt["generated"]["overall"] if gt["generated"] else None
        lines.append(
            f"| GAN-test: classifier accuracy on generated images | {_f(gen, percent=True)} | "
            f"{_f(gt['real_test']['overall'], percent=True)} | the classifier on real test images |"
        )
    if "gan_train" in report:
        gtr = report["gan_train"]
        gen = gtr["generated"]["overall"] if gtr["generated"] else None
        lines.append(
            f"| GAN-train: trained on {gtr['images']:,} generated, tested on real | {_f(gen, percent=True)} | "
            f"{_f(gtr['real']['overall'], percent=True)} | the same recipe trained on {gtr['images']:,} real |"
        )
        if gtr.get("ratio_to_real"):
            lines.append(
                f"| GAN-train ÷ its real-data figure | {_f(gtr['ratio_to_real']['overall'], 3)} | 1 | "
                "the same recipe trained on real |"
            )
    if "inception_fid" in report:
        inc = report["inception_fid"]
        for entry in inc.get("by_samples", [inc]):
            real = "the whole real test set" if entry.get("real_set") == "all" else "real test"
            lines.append(
                f"| Inception FID ({entry['generated_images']:,} vs {entry['real_images']:,} {real}) | "
                f"{_fid(entry['fid'])} | | published: 21-30 (Lucic et al. 2018), 15.8 (Zhang & Khoreva 2019) |"
            )
    lines += _per_class_markdown(report)
    if not report["conditional"]:
        lines += ["", f"GAN-test, GAN-train and the per-class figures are {NOT_CONDITIONAL}."]
    if report.get("detection"):
        lines += [
            "",
            "## Real/fake detection",
            "",
            "Real test images against as many fresh generated images with the same labels; "
            "accuracy at P(real) > 0.5, after dividing the logits by the model's temperature.",
            "",
            "| Model | Kind | Images (real + fake) | Accuracy | Real called real | Fake called fake "
            "| ROC AUC | ECE | Temperature |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for d in report["detection"]:
            trained = [f"{d[k]} {k[8:]}" for k in ("trained_epochs", "trained_steps") if d.get(k) is not None]
            epochs = "".join(f", {t}" for t in trained)
            lines.append(
                f"| `{d['path']}` ({d['class_name']}{epochs}) | {d['kind']} | {d['n_real']:,} + {d['n_fake']:,} | "
                f"{_f(d['accuracy'], percent=True)} | {_f(d['accuracy_real'], percent=True)} | "
                f"{_f(d['accuracy_fake'], percent=True)} | {_f(d['roc_auc'], 3)} | {_f(d['ece'], 3)} | "
                f"{_f(d['temperature'], 3)} |"
            )
    if "gan_train" in report:
        r = report["gan_train"]["recipe"]
        lines += [
            "",
            f"GAN-train recipe: Classifier(channels={r['channels']}, feature_dim={r['feature_dim']}), "
            f"{r['epochs']} epochs, batch {r['batch_size']}, AdamW, peak lr {r['lr']}, "
            f"flips {'on' if r['flip'] else 'off'}, shifts ±{r['shift']} px.",
        ]
    if "inception_fid" in report:
        inc = report["inception_fid"]
        lines += ["", f"Inception FID protocol: {inc['protocol']}."]
        timing = inc.get("timing")
        if timing:
            rate = timing["seconds_per_1000_images"]
            speed = f" ({rate:.0f} s per 1,000 images)" if rate is not None else ""
            stats = "; the real test set's statistics from the cache" if timing["real_stats_from_cache"] else ""
            lines[-1] += (
                f" Features computed for {timing['images_computed']:,} images in {timing['seconds_computing']:.0f} s"
                f"{speed}, {timing['images_from_cache']:,} from the cache{stats}."
            )
    secs = report["seconds"]
    lines += [
        "",
        "Time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items() if k != "total")
        + f"; total {secs['total']:.0f} s (torch threads: {report['threads']}).",
        "",
    ]
    return "\n".join(lines)


def _per_class_markdown(report: dict[str, Any]) -> list[str]:
    """The per-class tables: precision and recall within each class; GAN-test and GAN-train."""
    lines: list[str] = []
    per_class = (report.get("precision_recall") or {}).get("per_class")
    if per_class:
        k = per_class["k"]
        gen, ref = per_class["generated"], per_class["train_reference"]
        images = per_class["images"]
        lines += [
            "",
            f"## Per class: precision and recall (k = {k})",
            "",
            "Within each class: the generated images of the class against the real test images of the class; "
            "real reference: as many real training images of the class against the same test images. Same k and "
            "feature space as the overall figures.",
            "",
            "| Class | Generated | Real test | Precision | Real reference | Recall | Real reference |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in gen:
            g, r = gen[name] or {}, ref[name] or {}
            lines.append(
                f"| {name} | {images['generated'][name]:,} | {images['real_test'][name]:,} | "
                f"{_f(g.get('precision'), 3)} | {_f(r.get('precision'), 3)} | "
                f"{_f(g.get('recall'), 3)} | {_f(r.get('recall'), 3)} |"
            )
    if report.get("gan_test", {}).get("generated"):
        gen_pc = report["gan_test"]["generated"]["per_class"]
        real_pc = report["gan_test"]["real_test"]["per_class"]
        gtr = report.get("gan_train") or {}
        lines += ["", "## Per class: GAN-test and GAN-train", ""]
        header = "| Class | GAN-test | Classifier on real test |"
        rule = "| --- | ---: | ---: |"
        if gtr.get("generated"):
            header += " GAN-train | Same recipe on real | GAN-train ÷ real |"
            rule += " ---: | ---: | ---: |"
        lines += [header, rule]
        for name in gen_pc:
            row = f"| {name} | {_f(gen_pc[name], percent=True)} | {_f(real_pc[name], percent=True)} |"
            if gtr.get("generated"):
                ratio = (gtr.get("ratio_to_real") or {}).get("per_class", {}).get(name)
                row += (
                    f" {_f(gtr['generated']['per_class'][name], percent=True)} |"
                    f" {_f(gtr['real']['per_class'][name], percent=True)} | {_f(ratio, 3)} |"
                )
            lines.append(row)
    return lines


def render_curve_markdown(curve: dict[str, Any], command: str | None = None) -> str:
    """A ``truncation_curve`` as one markdown table: a row per psi, the real-data reference last."""
    rows = curve["truncation_curve"]
    ref = curve["real_reference"]
    columns = [  # (key, heading, format)
        ("precision", f"Precision (k = {ref.get('k', DEFAULT_K)})", lambda v: _f(v, 3)),
        ("recall", f"Recall (k = {ref.get('k', DEFAULT_K)})", lambda v: _f(v, 3)),
        ("fid", "FID, classifier features", _fid),
        ("gan_test", "GAN-test", lambda v: _f(v, percent=True)),
        ("gan_train", "GAN-train", lambda v: _f(v, percent=True)),
    ]
    columns = [c for c in columns if any(c[0] in row for row in rows)]
    lines = [
        f"# Fidelity and diversity against truncation: `{curve['generator']}`",
        "",
        f"{curve['generated_images']:,} generated images per point ({curve['samples_per_class']:,} per class, "
        f"quantized to uint8 as served), seed {curve['seed']}: every point draws the same latents and pulls them "
        f"toward the mean latent by its psi. Feature space: {curve['feature_space']} of `{curve['classifier']}`.",
        "",
        "| Truncation psi | " + " | ".join(heading for _, heading, _ in columns) + " |",
        "| ---: | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for row in rows:
        cells = [fmt(row[key]) if key in row else "n/a" for key, _, fmt in columns]
        lines.append(f"| {row['truncation']:g} | " + " | ".join(cells) + " |")
    cells = [fmt(ref[key]) if key in ref else "" for key, _, fmt in columns]
    lines.append("| real data | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Real data: precision and recall and FID of as many real training images against the test set; GAN-test of "
        "the classifier on the real test images.",
    ]
    if command:
        lines += ["", "Command:", "", "```bash", command, "```"]
    lines += ["", f"Time: {curve['seconds']['total']:.0f} s.", ""]
    return "\n".join(lines)


def write_reports(report: dict[str, Any], out: str | os.PathLike, markdown: str | None = None) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and the markdown beside it (same name, .md; default: ``render_markdown(report)``);
    return both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = out.with_suffix(".md")
    if md == out:
        raise ValueError(f"{out}: the JSON report needs a name that does not end in .md")
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    md.write_text(render_markdown(report) if markdown is None else markdown)
    return out, md


__all__ = [
    "METRICS",
    "EvalOptions",
    "balanced_draw",
    "balanced_draw_indices",
    "balanced_indices",
    "balanced_labels",
    "balanced_subset",
    "cheap_metrics",
    "evaluate",
    "generate_uint8",
    "inception_sizes",
    "record_in_checkpoint",
    "render_curve_markdown",
    "render_markdown",
    "stream_seed",
    "truncation_curve",
    "write_reports",
]
