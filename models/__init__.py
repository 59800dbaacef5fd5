"""Shared core of the project: networks, label set, pixel conventions and checkpoint format.

Imports neither ``training`` nor ``service``.
"""

from pathlib import Path

from models.checkpoint import (
    CheckpointError,
    build_model,
    load_model,
    read_config,
    read_temperature,
    register,
    registered,
    save_model,
    update_metrics,
    weights_version,
)
from models.classifier import Classifier, ClassifierConfig
from models.detector import DETECTORS, Detector, DetectorConfig, DetectorEnsemble, DetectorEnsembleConfig
from models.labels import NAMES, NUM_CLASSES, UnknownLabelError, label_name, parse_label
from models.latents import TRUNCATION_RANGE, check_truncation, noise, truncate
from models.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from models.pix2pix import PatchDiscriminator, PatchDiscriminatorConfig, Pix2PixGenerator, Pix2PixGeneratorConfig
from models.pixels import quantize, requantize, to_float

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

__all__ = [
    "DETECTORS",
    "NAMES",
    "NUM_CLASSES",
    "TRUNCATION_RANGE",
    "WEIGHTS_DIR",
    "CheckpointError",
    "Classifier",
    "ClassifierConfig",
    "Detector",
    "DetectorConfig",
    "DetectorEnsemble",
    "DetectorEnsembleConfig",
    "Discriminator",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "PatchDiscriminator",
    "PatchDiscriminatorConfig",
    "Pix2PixGenerator",
    "Pix2PixGeneratorConfig",
    "UnknownLabelError",
    "build_model",
    "check_truncation",
    "label_name",
    "load_model",
    "noise",
    "parse_label",
    "quantize",
    "read_config",
    "read_temperature",
    "register",
    "registered",
    "requantize",
    "save_model",
    "to_float",
    "truncate",
    "update_metrics",
    "weights_version",
]
