"""Loading the served models from the weights directory, and readying them for inference.

Layout: ``<weights>/generator/`` and ``<weights>/discriminator/`` are required,
``<weights>/detector/`` is optional (a dedicated real/fake detector; when present
it is the default model of /classify), and so is ``<weights>/pix2pix/`` (the
sketch-to-clothing generator of POST /translate; without it the service starts,
and /translate answers 503 saying why). Each is a checkpoint directory in the
project's format (see models/checkpoint.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import models
from models import verdicts

log = logging.getLogger("service.loading")

GENERATOR = "generator"
DISCRIMINATOR = "discriminator"
DETECTOR = "detector"
TRANSLATOR = "pix2pix"


class StartupError(Exception):
    """A setting or a model makes the service unable to start; the message says which and why."""


@dataclass
class ServedModel:
    """A network ready for inference, with the facts /info reports about it."""

    name: str
    module: nn.Module
    directory: Path
    checkpoint: dict[str, Any]  # the parsed config.json
    temperature: float | None = None  # logits are divided by it (a calibrated detector's)
    version: str = ""  # models.weights_version: a short hash of the weights, named in answers and /info

    @property
    def tag(self) -> str:
        """``name@version``: which model, and which weights of it, gave an answer (the X-Model header)."""
        return f"{self.name}@{self.version}"

    @property
    def conditional(self) -> bool:
        """Whether the network was built with classes (config.num_classes > 0)."""
        return bool(getattr(getattr(self.module, "config", None), "num_classes", 0))

    @property
    def label_use(self) -> str:
        """How the network uses the image's class label: "required", "optional" or "ignored".

        The GAN's own networks need it when conditional. A detector is called as
        ``detector(x, y_or_None)`` and works either way, unless its config says it has no classes.
        """
        if self.name == DETECTOR:
            num_classes = getattr(getattr(self.module, "config", None), "num_classes", None)
            return "ignored" if num_classes == 0 else "optional"
        return "required" if self.conditional else "ignored"

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


@dataclass
class ModelSet:
    """Everything the engine serves."""

    device: torch.device
    generator: ServedModel
    classifiers: dict[str, ServedModel]  # "discriminator", and "detector" when present
    translator: ServedModel | None = None  # pix2pix, when the weights directory holds it

    @property
    def served(self) -> list[ServedModel]:
        """Every loaded model: the generator, the classifiers, the translator (when loaded)."""
        return [self.generator, *self.classifiers.values(), *([self.translator] if self.translator else [])]

    @property
    def default_classifier(self) -> str:
        return DETECTOR if DETECTOR in self.classifiers else DISCRIMINATOR


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a named CUDA device must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StartupError(f"device {spec!r} was asked for, but CUDA is not available here; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise StartupError(f"device {spec!r} does not exist; {torch.cuda.device_count()} CUDA device(s) here")
    return device


def configure_torch(threads: int) -> None:
    """Set torch's CPU thread pools deliberately instead of torch's guess.

    Intra-op threads: ``threads`` for each forward pass (service.resources plans how many, and how many
    passes run at once). Inter-op: 1, since the models have no parallel branches.
    """
    torch.set_num_threads(threads)
    # It can be set only once per process, before any inter-op work (tests build many apps).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


# Serving judges with the networks exactly as the classify command does (models.verdicts says why).
freeze_for_serving = verdicts.freeze


def _load(
    name: str, directory: Path, expected: type[nn.Module] | tuple[type[nn.Module], ...] | None, device: torch.device
) -> ServedModel:
    try:
        module = models.load_model(directory, expected=expected, device=device)
    except models.CheckpointError:
        raise
    except Exception as exc:
        # What load_model does not anticipate, e.g. torch refusing a negative size from config.json:
        # still one line naming the checkpoint, not a traceback.
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise models.CheckpointError(
            f"{directory}: cannot build or load the {name} ({type(exc).__name__}: {text[:160]})"
        ) from None
    checkpoint = getattr(module, "checkpoint", {})
    for section in ("training", "metrics"):
        if not isinstance(checkpoint.get(section, {}), dict):
            raise models.CheckpointError(f"{directory / 'config.json'}: '{section}' must be a JSON object")
    served = ServedModel(
        name,
        freeze_for_serving(module),
        directory,
        checkpoint,
        models.read_temperature(checkpoint, directory),
        models.weights_version(directory),
    )
    log.info(
        "loaded %s: %s from %s (version %s, %d parameters, %s)",
        name,
        type(module).__name__,
        directory,
        served.version,
        served.parameters,
        "conditional" if served.conditional else "unconditional",
    )
    return served


def default_classifier_name(weights_dir: Path) -> str:
    """The model /classify uses when a request names none: the detector when the weights hold one."""
    return DETECTOR if (Path(weights_dir) / DETECTOR).exists() else DISCRIMINATOR


def classifier_names(weights_dir: Path) -> tuple[str, ...]:
    """The classifiers a weights directory serves, the default first."""
    return (DETECTOR, DISCRIMINATOR) if default_classifier_name(weights_dir) == DETECTOR else (DISCRIMINATOR,)


def has_translator(weights_dir: Path) -> bool:
    """Whether a weights directory holds the sketch-to-clothing model (POST /translate)."""
    return (Path(weights_dir) / TRANSLATOR).exists()


# Why POST /translate cannot answer on a server whose weights directory has no translator.
MISSING_TRANSLATOR = (
    f"no sketch-to-clothing model is loaded on this server: its weights directory (FGAN_WEIGHTS_DIR) has no "
    f"{TRANSLATOR}/ checkpoint; the other routes work as usual"
)


def load_models(weights_dir: Path, device: torch.device) -> ModelSet:
    """Load and check every served model. Raises CheckpointError naming the file at fault."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise models.CheckpointError(
            f"{weights_dir}: weights directory not found (set FGAN_WEIGHTS_DIR to a directory "
            f"with {GENERATOR}/ and {DISCRIMINATOR}/ checkpoints)"
        )
    generator = _load(GENERATOR, weights_dir / GENERATOR, models.Generator, device)
    classifiers = {DISCRIMINATOR: _load(DISCRIMINATOR, weights_dir / DISCRIMINATOR, models.Discriminator, device)}
    if default_classifier_name(weights_dir) == DETECTOR:
        # A single Detector or an ensemble of them.
        classifiers[DETECTOR] = _load(DETECTOR, weights_dir / DETECTOR, models.DETECTORS, device)
    translator = None
    if has_translator(weights_dir):
        translator = _load(TRANSLATOR, weights_dir / TRANSLATOR, models.Pix2PixGenerator, device)
    else:
        log.info("%s; POST /translate answers 503", MISSING_TRANSLATOR)
    return ModelSet(device=device, generator=generator, classifiers=classifiers, translator=translator)
