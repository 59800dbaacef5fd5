"""`classify`: tell whether one image file is a real Fashion-MNIST image or a generated fake.

Prints exactly one JSON line on stdout, ``{"label": "real" | "fake", "confidence": c}``,
and nothing else; logs and errors go to stderr, and any error exits non-zero.
The decision is taken on the calibrated probability p of "real" (the logit
divided by the checkpoint's fitted temperature, when it has one): "real" when
p > 0.5. The confidence is max(p, 1 - p), rounded to 4 digits after deciding,
so it lies in [0.5, 1].
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import torch

from models import (
    DETECTORS,
    WEIGHTS_DIR,
    CheckpointError,
    Discriminator,
    UnknownLabelError,
    load_model,
    parse_label,
    read_temperature,
    to_float,
)
from models.image_files import ImageDecodeError, decode_image
from training.device import resolve_device

NAME = "classify"
HELP = 'say whether an image is real or fake: prints one JSON line {"label": "real"|"fake", "confidence": c}'
MODELS = {"detector": DETECTORS, "discriminator": Discriminator}
log = logging.getLogger(__name__)


class ClassifyError(Exception):
    """Anything that stops a classification; the message is meant for the user."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, metavar="FILE", help="image file (PNG, JPEG, WebP, BMP, GIF, TIFF, ...)")
    p.add_argument("--label", help="its class, an id 0-9 or a name such as 'Bag' (optional for the detector)")
    p.add_argument("--model", choices=tuple(MODELS), default="detector", help="which network judges (default detector)")
    p.add_argument(
        "--weights-dir",
        type=Path,
        default=WEIGHTS_DIR,
        metavar="DIR",
        help="folder holding detector/ and discriminator/ checkpoints (default: the shipped weights)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")


def decide(logit: float, temperature: float = 1.0) -> dict[str, Any]:
    """The answer for one logit (positive = real): decide on p = sigmoid(logit / T), then round the confidence."""
    z = logit / temperature
    p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))  # no overflow either way
    label = "real" if p > 0.5 else "fake"  # as training.metrics.detection decides: a logit of 0 says "fake"
    return {"label": label, "confidence": round(max(p, 1.0 - p), 4)}


def classify(
    image_path: Path,
    label: str | None,
    model_name: str,
    weights_dir: Path,
    device: torch.device,
) -> dict[str, Any]:
    """Decode, judge and decide; raises ClassifyError with a user-facing message for anything wrong."""
    # Read and decode the image.
    try:
        data = image_path.read_bytes()
    except FileNotFoundError:
        raise ClassifyError(f"{image_path}: no such file") from None
    except IsADirectoryError:
        raise ClassifyError(f"{image_path}: is a directory, not an image file") from None
    except OSError as exc:
        raise ClassifyError(f"{image_path}: cannot read ({exc.strerror or exc})") from None
    try:
        image = decode_image(data)  # (28, 28) uint8
    except ImageDecodeError as exc:
        raise ClassifyError(f"{image_path}: {exc}") from None

    # Parse the label.
    try:
        y = None if label is None else parse_label(label)
    except UnknownLabelError as exc:
        raise ClassifyError(str(exc)) from None

    # Load the model.
    try:
        model = load_model(weights_dir / model_name, expected=MODELS[model_name], device=device)
    except CheckpointError as exc:
        hint = (
            ""
            if (weights_dir / model_name).is_dir()
            else f" (train one, or point --weights-dir at a folder with {model_name}/)"
        )
        raise ClassifyError(f"cannot load the {model_name}: {exc}{hint}") from None
    try:
        temperature = read_temperature(model.checkpoint, weights_dir / model_name, default=1.0)
    except CheckpointError as exc:
        raise ClassifyError(f"cannot use the {model_name}: {exc}") from None
    if isinstance(model, Discriminator) and model.conditional and y is None:
        raise ClassifyError("the conditional discriminator needs the image's class: give --label (an id 0-9 or a name)")
    if y is not None and not model.conditional:
        log.info("this %s ignores labels; --label %s is not used", model_name, label)

    # Judge it.
    x = to_float(image.to(device)).view(1, 1, 28, 28)  # (1, 1, 28, 28)
    labels = torch.tensor([y], device=device) if y is not None and model.conditional else None
    with torch.no_grad():
        logit = float(model(x, labels)[0])
    return decide(logit, temperature)


def run(args: argparse.Namespace) -> int:
    try:
        device = resolve_device(args.device)
        answer = classify(Path(args.image), args.label, args.model, Path(args.weights_dir), device)
    except (ClassifyError, ValueError) as exc:
        # Written directly, not logged, so that no --log-level can hide it.
        sys.stderr.write(f"classify: error: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0
