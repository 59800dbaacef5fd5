"""Joining trained detectors into one: the mean of their logits, recalibrated and evaluated like a detector run.

Detectors trained apart call mostly different images wrong (docs/detector.md), so averaging their logits
separates better than either alone. The ensemble is calibrated on the same held-out validation images as its
members, which none of them trained on: so the members must share their validation split (the same
``seed``, ``dataset``, ``val_images`` and ``train_images``, which every ``--init`` continuation keeps), and
the command refuses members that do not.

An ensemble directory holds:
  options.json        the options
  detector/           the exported DetectorEnsemble checkpoint; its config.json carries the members'
                      facts, the fitted temperature, ECE before/after and the test figures per generator
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import Detector, DetectorEnsemble, load_model, save_model
from training.calibration import calibrate
from training.data import load_split
from training.detector import (
    OPTIONS_NAME,
    FakeMix,
    predict_logits,
    split_reals,
    test_figures,
    validation_set,
)
from training.device import resolve_device
from training.loop import code_version
from training.transforms import AugmentOptions

log = logging.getLogger(__name__)

# The training facts that fix a detector's validation split: members must agree on every one.
SPLIT_FACTS = ("seed", "dataset", "val_images", "train_images")
# What the ensemble's config.json repeats of each member's training facts (the rest stays in the member's own).
MEMBER_FACTS = ("steps", "lr", "weight_decay", "stream_seed", "init", "generators", "code_version")


@dataclass
class EnsembleOptions:
    out: str
    members: list[str] = field(default_factory=list)  # detector checkpoint directories
    generators: list[str] = field(default_factory=list)  # validation fakes and "seen" test figures, as train-detector
    holdout_generators: list[str] = field(default_factory=list)  # evaluated only
    data_dir: str | None = None
    test_samples: int = 2000
    device: str = "auto"

    def check(self) -> None:
        if len(self.members) < 2:
            raise ValueError("give at least two --member DETECTOR_DIR")
        if len(set(self.members)) != len(self.members):
            raise ValueError("each --member must be a different detector")
        if not self.generators:
            raise ValueError("give at least one --generator DIR for the validation fakes")
        if self.test_samples < 1:
            raise ValueError("--test-samples must be >= 1")


def shared_split(members: list[Detector], paths: list[str]) -> dict[str, Any]:
    """The validation-split facts every member shares; ValueError naming the first one that differs."""
    facts = [m.checkpoint.get("training", {}) for m in members]
    split = {k: facts[0].get(k) for k in SPLIT_FACTS}
    missing = [k for k, v in split.items() if v is None]
    if missing:
        raise ValueError(f"{paths[0]}: its training facts lack {', '.join(missing)}: its validation split is unknown")
    for path, f in zip(paths[1:], facts[1:], strict=True):
        differ = [f"{k} {f.get(k)!r} (first member {v!r})" for k, v in split.items() if f.get(k) != v]
        if differ:
            raise ValueError(
                f"{path} was trained with another validation split than {paths[0]} ({', '.join(differ)}): "
                "one member's validation images would be another's training images"
            )
    return split


def build_ensemble(opts: EnsembleOptions) -> dict[str, Any]:
    """Join the members, calibrate on their shared validation split, evaluate, export; returns the metrics."""
    opts.check()
    run_dir = Path(opts.out)
    if (run_dir / OPTIONS_NAME).exists():
        raise ValueError(f"{run_dir} already holds a run ({OPTIONS_NAME}); choose a new --out")
    device = resolve_device(opts.device)
    members = [load_model(p, expected=Detector, device=device) for p in opts.members]
    split = shared_split(members, opts.members)
    first = members[0].checkpoint.get("training", {})
    recorded = first.get("augment", {})  # the first member's augmentations, for the validation images
    augment = AugmentOptions.from_json(recorded)
    label_dropout = float(first.get("label_dropout", 0.3))
    ensemble = DetectorEnsemble.of(members).to(device).eval()  # also refuses members that take different labels
    fakes = FakeMix(opts.generators, device)

    # The members' validation reals: the seeded split of the training images, as train-detector drew it.
    n = split["train_images"] + split["val_images"]
    data = load_split("train", split["dataset"], opts.data_dir, limit=n)
    if len(data) < n:
        raise ValueError(f"the members trained on {n} images; {len(data)} are here")
    _, _, val_x, val_y = split_reals(data, split["val_images"], split["seed"])
    val = validation_set(val_x, val_y, fakes, split["seed"], label_dropout, augment, device)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OPTIONS_NAME).write_text(json.dumps(dataclasses.asdict(opts), indent=2) + "\n")
    images, labels, targets = val
    calibration = calibrate(predict_logits(ensemble, images, labels, device), targets)
    log.info("%s", calibration)
    test = test_figures(
        ensemble,
        fakes,
        opts.holdout_generators,
        samples=opts.test_samples,
        seed=split["seed"],
        dataset=split["dataset"],
        data_dir=opts.data_dir,
        temperature=calibration.temperature,
        device=device,
    )
    metrics = {**calibration.to_metrics(), "test": test}
    facts = {
        **split,
        "members": [
            {
                "path": path,
                "channels": m.config.channels,
                "temperature": m.checkpoint.get("metrics", {}).get("temperature"),
                **{k: v for k, v in m.checkpoint.get("training", {}).items() if k in MEMBER_FACTS},
            }
            for path, m in zip(opts.members, members, strict=True)
        ],
        "label_dropout": label_dropout,
        "augment": dataclasses.asdict(augment),
        "generators": fakes.describe(),
        "holdout_generators": list(opts.holdout_generators),
        "device": str(device),
        "code_version": code_version(),
        "torch": torch.__version__,
    }
    save_model(ensemble, run_dir / "detector", training=facts, metrics=metrics)
    log.info("exported %s", run_dir / "detector")
    return metrics
