"""`compare-detectors`: several detectors (and GAN discriminators) judge the same images, generator by generator.

The real test images and each generator's fakes are drawn once, as ``train-detector`` draws its test figures
(balanced classes, the fakes carrying the reals' labels, quantized as served), from seeded streams named after
this command and the generator's path; so the same options always draw the same images, and every model judges
the same ones. Two detectors trained against different generators (and so with different "seen" and "unseen"
lists) compare row by row. Each image set is judged as drawn ("clean") and after one grayscale JPEG round trip
at each ``--jpeg-quality`` ("jpeg75" by default), with the labels given and withheld. A GAN discriminator needs
the label: it is judged labelled, on the conditional generators only. Each model's temperature is its
checkpoint's (1 when it has none).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models import DETECTORS, CheckpointError, Discriminator, Generator, load_model, read_temperature
from training.data import DATASETS, DataError
from training.detector import EVAL_JPEG_QUALITY, detection_figures, draw_test_reals, predict_logits
from training.device import resolve_device
from training.evaluation import stream_seed
from training.fakes import draw_fakes
from training.transforms import apply_each, jpeg

NAME = "compare-detectors"
HELP = (
    "judge several detectors (and GAN discriminators) on the same real test images and fakes of each generator, "
    "clean and after JPEG; writes a JSON report and a Markdown table"
)
log = logging.getLogger(__name__)
LABEL_MODES = ("labelled", "unlabelled")


def _quality(text: str) -> int:
    try:
        q = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a JPEG quality is a whole number 1..100, not {text!r}") from None
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"a JPEG quality is 1..100, not {q}")
    return q


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector", metavar="DIR", action="append", default=[], help="detector checkpoint to judge (repeatable)"
    )
    p.add_argument(
        "--discriminator",
        metavar="DIR",
        action="append",
        default=[],
        help="GAN discriminator checkpoint, judged with labels given (repeatable)",
    )
    p.add_argument(
        "--generator",
        metavar="DIR",
        action="append",
        default=[],
        required=True,
        help="generator whose fakes are judged (repeatable)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=2000,
        metavar="N",
        help="real test images, and fakes per generator (default 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="fixes the real images and every generator's fakes")
    p.add_argument(
        "--jpeg-quality",
        type=_quality,
        action="append",
        metavar="Q",
        help=f"judge the images after a JPEG round trip at quality Q too (repeatable; default {EVAL_JPEG_QUALITY})",
    )
    p.add_argument("--out", metavar="FILE", help="JSON report to write; the Markdown table goes beside it (.md)")
    p.add_argument("--data-dir", help="folder with the four IDX files (else $FGAN_DATA_DIR, Debian's, download)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")


def command_line(args: argparse.Namespace) -> str:
    """The command that draws and judges the same images again (paths as given: they name the fakes' streams)."""
    words = ["python", "-m", "training", NAME]
    words += [w for d in args.detector for w in ("--detector", d)]
    words += [w for d in args.discriminator for w in ("--discriminator", d)]
    words += [w for g in args.generator for w in ("--generator", g)]
    words += ["--samples", str(args.samples), "--seed", str(args.seed)]
    words += [w for q in qualities(args) for w in ("--jpeg-quality", str(q))]
    if args.dataset != "fashion-mnist":
        words += ["--dataset", args.dataset]
    return " ".join(words)


def qualities(args: argparse.Namespace) -> list[int]:
    return list(dict.fromkeys(args.jpeg_quality or [EVAL_JPEG_QUALITY]))  # in the order given, once each


def versions(images: torch.Tensor, jpeg_qualities: list[int]) -> dict[str, torch.Tensor]:
    """The images as drawn ("clean") and after a grayscale JPEG round trip at each quality ("jpegQ"), decoded as
    an upload is (the transformation suite's ``jpegQ`` where it has one)."""
    return {"clean": images, **{f"jpeg{q}": apply_each(images, [jpeg(q)] * len(images), 0) for q in jpeg_qualities}}


def label_modes(model: nn.Module, *, needs_label: bool) -> list[str]:
    """How a model can judge: "labelled" (a conditional model, given the labels) and "unlabelled" (labels withheld;
    not for a model that ``needs_label``)."""
    return [
        m for m in LABEL_MODES if (m == "labelled" and model.conditional) or (m == "unlabelled" and not needs_label)
    ]


def judge(
    model: nn.Module,
    real_logits: dict[tuple[str, str], torch.Tensor],
    fake: dict[str, torch.Tensor],
    fake_labels: torch.Tensor | None,
    *,
    temperature: float,
    device: torch.device,
) -> dict[str, dict[str, Any]] | None:
    """Figures of one model on each version of one generator's fakes against the same version of the reals.

    ``real_logits`` holds the model's logits on the reals by (version, mode); ``fake_labels`` is None for an
    unconditional generator, whose fakes are judged unlabelled only. Returns {version: {mode: figures}}, or None
    when no mode applies (a discriminator that needs labels, against an unconditional generator).
    """
    modes = [m for v, m in real_logits if v == "clean" and (m == "unlabelled" or fake_labels is not None)]
    if not modes:
        return None
    figures: dict[str, dict[str, Any]] = {}
    for version, images in fake.items():
        figures[version] = {}
        for mode in modes:
            fake_logits = predict_logits(model, images, fake_labels if mode == "labelled" else None, device)
            figures[version][mode] = detection_figures(real_logits[(version, mode)], fake_logits, temperature)
    return figures


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Draw the images once, judge them with every model; returns the report."""
    device = resolve_device(args.device)
    jpeg_qualities = qualities(args)
    judges = [(path, DETECTORS, False) for path in args.detector]
    judges += [(path, Discriminator, True) for path in args.discriminator]
    models: dict[str, nn.Module] = {p: load_model(p, expected=expected, device=device) for p, expected, _ in judges}
    temperatures = {p: read_temperature(m.checkpoint, p, default=1.0) for p, m in models.items()}

    # Judge the reals once per model, image version and label mode.
    real = draw_test_reals(args.samples, args.seed, "compare-real", args.dataset, args.data_dir)
    real_versions = versions(real.images, jpeg_qualities)
    real_logits = {
        path: {
            (version, mode): predict_logits(models[path], images, real.labels if mode == "labelled" else None, device)
            for version, images in real_versions.items()
            for mode in label_modes(models[path], needs_label=is_discriminator)
        }
        for path, _, is_discriminator in judges
    }

    # Judge each generator's fakes.
    figures: dict[str, dict[str, Any]] = {path: {} for path in models}
    for generator_path in args.generator:
        g = load_model(generator_path, expected=Generator, device=device)
        images, labels = draw_fakes(g, real.labels, stream_seed(args.seed, f"compare:{generator_path}"), device)
        fake_versions = versions(images, jpeg_qualities)
        for path, model in models.items():
            result = judge(
                model,
                real_logits[path],
                fake_versions,
                labels if g.conditional else None,
                temperature=temperatures[path],
                device=device,
            )
            if result is not None:
                figures[path][generator_path] = result
                log.info("%s on %s: %s", path, generator_path, summary(result))

    return {
        "command": command_line(args),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "device": str(device)},
        "samples": len(real.images),
        "jpeg_qualities": jpeg_qualities,
        "generators": list(args.generator),
        "detectors": {
            path: {"kind": type(model).__name__, "temperature": temperatures[path], "figures": figures[path]}
            for path, model in models.items()
        },
    }


def summary(figures: dict[str, dict[str, Any]]) -> str:
    """One line: accuracy per version and label mode."""
    return "; ".join(
        f"{version}/{mode} {fig['accuracy'] * 100:.2f}%"
        for version, modes in figures.items()
        for mode, fig in modes.items()
    )


def markdown(report: dict[str, Any]) -> str:
    """A row per generator, model and image version: accuracy and ROC AUC labelled / unlabelled, the larger ECE."""
    lines = [
        f"Real test images against fresh fakes, {report['samples']:,} each, the same images for every model "
        f"(`{report['command']}`). Accuracy and ROC AUC labelled / unlabelled (a discriminator, or an "
        "unconditional generator: one of the two); ECE the larger of the two.",
        "",
        "| generator | model | images | accuracy | ROC AUC | ECE |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for generator in report["generators"]:
        for path, entry in report["detectors"].items():
            for version, modes in entry["figures"].get(generator, {}).items():
                accuracy = " / ".join(f"{fig['accuracy'] * 100:.2f}%" for fig in modes.values())
                auc = " / ".join(f"{fig['roc_auc']:.4f}" for fig in modes.values())
                ece = max(fig["ece"] for fig in modes.values())
                lines.append(f"| `{generator}` | `{path}` | {version} | {accuracy} | {auc} | {ece:.3f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    if not args.detector and not args.discriminator:
        log.error("give at least one --detector or --discriminator")
        return 2
    if args.samples < 1:
        log.error("--samples must be at least 1")
        return 2
    try:
        report = compare(args)
    except (CheckpointError, DataError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    table = markdown(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(table)
        log.info("wrote %s and %s", out, out.with_suffix(".md"))
    print(table, end="")
    return 0
