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
the model card and the service's ``/info`` carry.
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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(report: Mapping[str, Any]) -> str:
    """One table per judge: a row per transformation; reals called real, then fakes called fake per source,
    then the worst source's ROC AUC, TPR at 1% FPR and ECE."""
    lines = []
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
