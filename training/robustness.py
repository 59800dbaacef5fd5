"""The robustness report: how a detector's verdicts hold when images are processed, source by source.

For every transformation of ``training.transforms`` (the suite, and the held-out kinds that training never
applies), the same real test images and each fake source's fakes go through the *same* transformation
(the same function, the same seed), a file and the upload decoder, and the detector judges them. Per
transformation and source:

- ``accuracy_real``: real images called real; ``accuracy_fake``: fakes called fake (threshold 0.5, after the
  detector's temperature: what ``/classify`` answers);
- ``accuracy``: the two averaged (balanced, whatever the counts);
- ``roc_auc`` and ``tpr_at_1fpr`` (fakes caught when only 1% of reals may be called fake): threshold-free;
- ``ece``: expected calibration error over the reals and that source's fakes (equal numbers): a detector
  that cannot tell should say so with a confidence near 0.5 rather than be confidently wrong.

The report is a JSON document and a Markdown table (``write_report``); ``headline`` keeps the few figures that
the model card and the service's ``/info`` carry; ``tradeoff`` sums each detector up in one row (clean, the
ordinary transformations that the targets cover, the held-out kinds, the heavy ones), so that detectors trained
with other settings can be set side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models import DETECTORS, load_model, read_temperature
from training.detector import predict_logits
from training.evaluation import stream_seed
from training.metrics.detection import detection_figures_from_logits, tpr_at_fpr
from training.transforms import HEAVY, HELD_OUT, Transform

FPR = 0.01

# The single transformations that the detector's targets cover (JPEG down to 50, blur up to sigma 0.5,
# sharpening, the 28 -> 56 -> 28 round trips, noise sigma 2, shifts, brightness and contrast), and the targets.
ORDINARY = (
    "jpeg95", "jpeg75", "jpeg50", "blur0.3", "blur0.5", "pillow-blur0.3", "sharpen", "resize56-bilinear",
    "resize56-bicubic", "noise2", "shift1", "brightness+10", "brightness-10", "contrast+10", "contrast-10",
)  # fmt: skip
REAL_TARGET, FAKE_TARGET, HEAVY_ECE_TARGET = 0.97, 0.95, 0.05


@dataclass
class Judge:
    """A detector to measure: the network, its temperature, and whether it is given the labels."""

    name: str
    model: nn.Module
    temperature: float
    labelled: bool = True

    @classmethod
    def load(cls, path: str | Path, device: torch.device, *, name: str | None = None, labelled: bool = True) -> Judge:
        """A detector checkpoint, with the temperature it records (1 when it has none)."""
        model = load_model(path, expected=DETECTORS, device=device)
        temperature = read_temperature(model.checkpoint, path, default=1.0)
        return cls(name or str(path), model, temperature, labelled)


def _figures(real_logits: torch.Tensor, fake_logits: torch.Tensor, temperature: float) -> dict[str, float]:
    logits = torch.cat([real_logits, fake_logits]).double().numpy()
    targets = np.concatenate([np.ones(len(real_logits)), np.zeros(len(fake_logits))])
    f = detection_figures_from_logits(logits, targets, temperature=temperature)
    return {
        "accuracy_real": f.accuracy_real,
        "accuracy_fake": f.accuracy_fake,
        "accuracy": (f.accuracy_real + f.accuracy_fake) / 2.0,
        "roc_auc": f.roc_auc,
        "tpr_at_1fpr": tpr_at_fpr(logits, targets, FPR),
        "ece": f.ece,
    }


def robustness_report(
    judges: Sequence[Judge],
    real: tuple[torch.Tensor, torch.Tensor],
    sources: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    transforms: Sequence[Transform],
    *,
    seed: int,
    device: torch.device,
) -> dict[str, Any]:
    """Figures of each judge on the reals against each source's fakes, under each transformation.

    ``real`` and each source are (uint8 (N, 28, 28) images, labels (N,)). Returns
    ``{judge: {transform: {"real": accuracy_real, "sources": {source: figures}}}}`` plus the facts.
    """
    real_images, real_labels = real
    out: dict[str, Any] = {j.name: {} for j in judges}
    for t in transforms:
        # The same transformation, with seeds of its own, for the reals and for every source.
        real_t = t(real_images, seed=stream_seed(seed, f"robustness:{t.name}:real"))
        fakes_t = {
            name: t(images, seed=stream_seed(seed, f"robustness:{t.name}:{name}"))
            for name, (images, _) in sources.items()
        }
        for j in judges:
            real_logits = predict_logits(j.model, real_t, real_labels if j.labelled else None, device)
            row: dict[str, Any] = {"sources": {}}
            for name, (_, labels) in sources.items():
                fake_logits = predict_logits(j.model, fakes_t[name], labels if j.labelled else None, device)
                row["sources"][name] = _figures(real_logits, fake_logits, j.temperature)
            row["accuracy_real"] = next(iter(row["sources"].values()))["accuracy_real"] if sources else None
            out[j.name][t.name] = row
    return {
        "judges": {j.name: {"temperature": j.temperature, "labelled": j.labelled} for j in judges},
        "transforms": {
            t.name: {"kind": t.kind, "describe": t.describe, "heavy": t.name in HEAVY, "held_out": t.name in HELD_OUT}
            for t in transforms
        },
        "sources": list(sources),
        "n_real": len(real_images),
        "n_fake": {name: len(images) for name, (images, _) in sources.items()},
        "seed": seed,
        "figures": out,
    }


def headline(report: Mapping[str, Any], judge: str) -> dict[str, dict[str, float]]:
    """Per transformation: reals called real, the lowest share of fakes called fake over the sources, the
    lowest ROC AUC and TPR at 1% FPR, and the highest ECE: the figures the model card and /info show."""
    rows = {}
    for name, row in report["figures"][judge].items():
        per = row["sources"].values()
        rows[name] = {
            "real_called_real": row["accuracy_real"],
            "fake_called_fake_min": min(f["accuracy_fake"] for f in per),
            "roc_auc_min": min(f["roc_auc"] for f in per),
            "tpr_at_1fpr_min": min(f["tpr_at_1fpr"] for f in per),
            "ece_max": max(f["ece"] for f in per),
        }
    return rows


def tradeoff(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per judge, over the transformations the report holds:

    - ``clean_real`` and ``clean_fake_min`` (the weakest source), ``clean_ece_max``;
    - over ``ORDINARY``: the lowest share of reals called real and of fakes called fake (any source), each
      with where it falls, and how many of those transformations meet both targets for every source;
    - ``held_out_accuracy``: balanced accuracy averaged over the held-out kinds and the sources;
    - ``heavy_ece_max``: the highest ECE under a heavy transformation.
    Figures a report does not hold (a transformation not measured) are None.
    """
    transforms = report["transforms"]
    rows = {}
    for judge, figures in report["figures"].items():
        head = headline(report, judge)
        ordinary = [t for t in ORDINARY if t in figures]
        held = [t for t in figures if transforms[t]["held_out"]]
        heavy = [t for t in figures if transforms[t]["heavy"]]
        worst_fake = min(
            ((f["accuracy_fake"], t, s) for t in ordinary for s, f in figures[t]["sources"].items()), default=None
        )
        worst_real = min(((head[t]["real_called_real"], t) for t in ordinary), default=None)
        rows[judge] = {
            "clean_real": head["clean"]["real_called_real"] if "clean" in head else None,
            "clean_fake_min": head["clean"]["fake_called_fake_min"] if "clean" in head else None,
            "clean_ece_max": head["clean"]["ece_max"] if "clean" in head else None,
            "ordinary_real_min": worst_real and {"value": worst_real[0], "transform": worst_real[1]},
            "ordinary_fake_min": worst_fake
            and {"value": worst_fake[0], "transform": worst_fake[1], "source": worst_fake[2]},
            "ordinary_met": sum(
                head[t]["real_called_real"] >= REAL_TARGET and head[t]["fake_called_fake_min"] >= FAKE_TARGET
                for t in ordinary
            ),
            "ordinary_n": len(ordinary),
            "held_out_accuracy": float(np.mean([f["accuracy"] for t in held for f in figures[t]["sources"].values()]))
            if held
            else None,
            "heavy_ece_max": max((head[t]["ece_max"] for t in heavy), default=None),
        }
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _ece(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def tradeoff_markdown(report: Mapping[str, Any]) -> str:
    """``tradeoff`` as a table, a row per judge."""
    lines = [
        "| detector | clean: real | clean: fakes (weakest source) | ordinary: real, lowest | ordinary: fakes, lowest "
        "| ordinary transformations meeting both targets | held-out kinds: balanced accuracy | heavy: ECE max "
        "| clean: ECE max |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for judge, r in tradeoff(report).items():
        real, fake = r["ordinary_real_min"], r["ordinary_fake_min"]
        lines.append(
            f"| {judge} | {_pct(r['clean_real'])} | {_pct(r['clean_fake_min'])} "
            f"| {_pct(real and real['value'])} ({real['transform'] if real else '—'}) "
            f"| {_pct(fake and fake['value'])} ({fake['transform'] + ', ' + fake['source'] if fake else '—'}) "
            f"| {r['ordinary_met']} of {r['ordinary_n']} | {_pct(r['held_out_accuracy'])} "
            f"| {_ece(r['heavy_ece_max'])} | {_ece(r['clean_ece_max'])} |"
        )
    return "\n".join(lines) + "\n"


def markdown(report: Mapping[str, Any]) -> str:
    """One table per judge: a row per transformation; reals called real, then fakes called fake per source,
    then the worst source's ROC AUC, TPR at 1% FPR and ECE."""
    lines = []
    if len(report["figures"]) > 1:
        lines += [
            "### Side by side",
            "",
            f"Ordinary transformations: those of {', '.join(ORDINARY)} that were measured; targets: real called "
            f"real >= {REAL_TARGET:.0%}, fakes called fake >= {FAKE_TARGET:.0%} for every source.",
            "",
            tradeoff_markdown(report),
        ]
    sources = report["sources"]
    for judge, rows in report["figures"].items():
        facts = report["judges"][judge]
        lines += [
            f"### {judge}",
            "",
            f"{report['n_real']} real test images against {', '.join(f'{n} {s}' for s, n in report['n_fake'].items())} "
            f"fakes; labels {'given' if facts['labelled'] else 'withheld'}; temperature {facts['temperature']:.3f}. "
            "Percentages: real called real, then fakes called fake per source; then, over the sources, the lowest "
            "ROC AUC and TPR at 1% FPR and the highest ECE. (h): heavy; (o): a kind training never applies.",
            "",
            "| transformation | real | " + " | ".join(sources) + " | AUC min | TPR@1%FPR min | ECE max |",
            "| --- | ---: | " + " | ".join("---:" for _ in sources) + " | ---: | ---: | ---: |",
        ]
        for name, row in rows.items():
            t = report["transforms"][name]
            mark = " (h)" if t["heavy"] else " (o)" if t["held_out"] else ""
            per = row["sources"]
            lines.append(
                f"| {name}{mark} | {_pct(row['accuracy_real'])} | "
                + " | ".join(_pct(per[s]["accuracy_fake"]) for s in sources)
                + f" | {min(f['roc_auc'] for f in per.values()):.4f}"
                + f" | {_pct(min(f['tpr_at_1fpr'] for f in per.values()))}"
                + f" | {max(f['ece'] for f in per.values()):.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out: str | Path) -> tuple[Path, Path]:
    """``out`` (.json) and the same name with .md; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    md = out.with_suffix(".md")
    md.write_text(markdown(report))
    return out, md
