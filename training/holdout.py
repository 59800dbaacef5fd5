"""Leave one generator family out: does the detector catch a family it never trained against?

For each family among the training sources, a detector is trained (``train-detector``'s trainer, the same
options) on every source of the *other* families, and judged on that family's test fakes against real test
images, clean and under a few transformations of the suite. The held-out family never reaches training:
``family_splits`` leaves every one of its sources out, and a test asserts it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from training.detector import DetectorOptions, draw_test_reals, train_detector
from training.device import resolve_device
from training.evaluation import stream_seed
from training.fakes import open_source
from training.robustness import Judge, robustness_report
from training.transforms import ALL

# The transformations a held-out family is judged under (clean, and one of each common kind).
HOLDOUT_TRANSFORMS = ("clean", "jpeg75", "blur0.5", "resize56-bilinear", "sharpen")


def family_of(spec: str, device: torch.device) -> str:
    return open_source(spec, device).family


def family_splits(families: Mapping[str, str]) -> dict[str, list[str]]:
    """For each family among ``families`` (source spec -> family), the specs a detector without it trains on."""
    return {f: [s for s, g in families.items() if g != f] for f in sorted(set(families.values()))}


def leave_one_out(
    base: DetectorOptions,
    test_sources: Mapping[str, str],
    *,
    families: Sequence[str] | None = None,
    samples: int = 2000,
    transforms: Sequence[str] = HOLDOUT_TRANSFORMS,
) -> dict[str, Any]:
    """Train one detector per held-out family into ``base.out``/without-FAMILY, judge it on that family.

    ``base.generators`` are the training sources (every family); ``test_sources`` maps a family to the
    source of its test fakes (a test bank, or a generator). Returns ``{family: {"trained_on": [...],
    "figures": {transform: figures}}}`` and writes it as holdout.json in ``base.out``.
    """
    device = resolve_device(base.device)
    by_spec = {s: family_of(s, device) for s in base.generators}
    splits = family_splits(by_spec)
    chosen = list(families) if families else list(splits)
    for f in chosen:
        if f not in splits:
            raise ValueError(f"family {f!r} is not among the training sources' ({', '.join(splits)})")
        if f not in test_sources:
            raise ValueError(f"no test fakes for family {f!r}: give --test {f}=PATH")
        if not splits[f]:
            raise ValueError(f"family {f!r} is the only one: nothing is left to train on without it")
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    real = draw_test_reals(samples, base.seed, "holdout-real", base.dataset, base.data_dir)
    results: dict[str, Any] = {}
    for f in chosen:
        run = out / f"without-{f}"
        opts = dataclasses.replace(
            base, out=str(run), generators=splits[f], holdout_generators=[test_sources[f]], test_samples=samples
        )
        if not (run / "detector" / "config.json").exists():  # a finished run is kept: the command resumes
            train_detector(opts)
        judge = Judge.load(run / "detector", device, name=f"without-{f}")
        source = open_source(test_sources[f], device)
        fakes = {f: source.for_labels(real.labels, stream_seed(base.seed, f"holdout-fakes:{f}"))}
        report = robustness_report(
            [judge],
            (real.images, real.labels),
            fakes,
            [ALL[t] for t in transforms],
            seed=base.seed,
            device=device,
        )
        results[f] = {
            "trained_on": splits[f],
            "test": test_sources[f],
            "figures": {t: row["sources"][f] for t, row in report["figures"][judge.name].items()},
        }
        (out / "holdout.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def markdown(results: Mapping[str, Any]) -> str:
    """A row per held-out family: balanced accuracy and TPR at 1% FPR, clean and under each transformation."""
    transforms = list(next(iter(results.values()))["figures"]) if results else []
    head = " | ".join(f"{t} acc / TPR@1%" for t in transforms)
    lines = [f"| held-out family | {head} |", "| --- | " + " | ".join("---:" for _ in transforms) + " |"]
    for f, r in results.items():
        cells = [
            f"{100 * r['figures'][t]['accuracy']:.1f} / {100 * r['figures'][t]['tpr_at_1fpr']:.1f}" for t in transforms
        ]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
