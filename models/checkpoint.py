"""The project's one checkpoint format: a directory with config.json + model.safetensors.

config.json holds the class name, the format version, the architecture config
(enough to rebuild the network), training facts and measured figures. The
weights file holds tensors only: nothing here unpickles anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_REGISTRY: dict[str, type[nn.Module]] = {}
M = TypeVar("M", bound=type[nn.Module])


class CheckpointError(Exception):
    """A checkpoint directory is missing, corrupt, or does not match its model."""


def register(cls: M) -> M:
    """Make a model class loadable by name. It needs a ``config_class`` dataclass and ``__init__(config)``."""
    if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
        raise TypeError(f"{cls.__name__} needs a dataclass attribute config_class")
    _REGISTRY[cls.__name__] = cls
    return cls


def registered() -> dict[str, type[nn.Module]]:
    return dict(_REGISTRY)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def weights_version(directory: str | os.PathLike, length: int = 12) -> str:
    """A short name for a checkpoint's weights: the first ``length`` hex digits of the SHA-256 of its
    model.safetensors. Two checkpoints with the same weights have the same version, whatever their config."""
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_NAME, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def save_model(
    model: nn.Module,
    directory: str | os.PathLike,
    *,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as ``directory/config.json`` + ``directory/model.safetensors``."""
    cls_name = type(model).__name__
    if _REGISTRY.get(cls_name) is not type(model):
        raise TypeError(f"{cls_name} is not a registered model class")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = directory / WEIGHTS_NAME
    tmp = weights.with_name(f".{WEIGHTS_NAME}.tmp")
    save_file(state, str(tmp), metadata={"class_name": cls_name, "format_version": str(FORMAT_VERSION)})
    os.replace(tmp, weights)
    config = {
        "class_name": cls_name,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(model.config),
        "training": training or {},
        "metrics": metrics or {},
    }
    _atomic_write(directory / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=False) + "\n").encode())
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint's config.json (class name and format version)."""
    path = Path(directory) / CONFIG_NAME
    if not Path(directory).is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory not found")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a checkpoint needs {CONFIG_NAME} and {WEIGHTS_NAME})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    name = config.get("class_name")
    if name not in _REGISTRY:
        raise CheckpointError(f"{path}: unknown class_name {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    if not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{path}: 'config' must be an object of architecture settings")
    return config


def read_temperature(
    checkpoint: dict[str, Any], directory: str | os.PathLike, default: float | None = None
) -> float | None:
    """A calibrated model's temperature (``metrics.temperature``; logits are divided by it), or ``default``
    when the checkpoint holds none (callers that divide by it pass 1.0; the service keeps None).

    Raises CheckpointError, naming the directory's config.json, when it is not a positive number.
    """
    value = (checkpoint.get("metrics") or {}).get("temperature")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise CheckpointError(
            f"{Path(directory) / CONFIG_NAME}: metrics.temperature must be a positive number, got {value!r}"
        )
    return float(value)


def build_model(class_name: str, arch: dict[str, Any], *, source: str = "config") -> nn.Module:
    """Instantiate a registered class from its architecture settings."""
    cls = _REGISTRY[class_name]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = set(arch) - fields
    if unknown:
        raise CheckpointError(f"{source}: unknown {class_name} settings {sorted(unknown)}")
    try:
        return cls(cls.config_class(**arch))
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: torch refuses e.g. a negative size
        raise CheckpointError(f"{source}: cannot build {class_name} from its settings ({exc})") from None


def load_model(
    directory: str | os.PathLike,
    *,
    expected: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuild a model from its directory, check every tensor, and return it in eval mode.

    The parsed config.json is attached as ``model.checkpoint``.
    """
    directory = Path(directory)
    config = read_config(directory)
    cfg_path = directory / CONFIG_NAME
    name = config["class_name"]
    if expected is not None:
        allowed = expected if isinstance(expected, tuple) else (expected,)
        if name not in {c.__name__ for c in allowed}:
            want = " or ".join(c.__name__ for c in allowed)
            raise CheckpointError(f"{cfg_path}: holds a {name}, expected a {want}")
    model = build_model(name, config["config"], source=str(cfg_path))
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: unreadable or corrupt safetensors file ({exc})") from None
    expected_state = model.state_dict()
    missing = sorted(set(expected_state) - set(state))
    extra = sorted(set(state) - set(expected_state))
    if missing:
        raise CheckpointError(f"{weights}: tensor {missing[0]!r} is missing ({len(missing)} missing in all)")
    if extra:
        raise CheckpointError(f"{weights}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected in all)")
    for key, ref in expected_state.items():
        got = state[key]
        if got.shape != ref.shape:
            raise CheckpointError(
                f"{weights}: tensor {key!r} has shape {tuple(got.shape)}, "
                f"the config in {CONFIG_NAME} implies {tuple(ref.shape)}"
            )
        if got.dtype != ref.dtype:
            raise CheckpointError(f"{weights}: tensor {key!r} has dtype {got.dtype}, expected {ref.dtype}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{weights}: tensor {key!r} holds NaN or infinite values")
    model.load_state_dict(state)
    model.checkpoint = config
    return model.to(device).eval()


def update_metrics(directory: str | os.PathLike, metrics: dict[str, Any]) -> None:
    """Merge measured figures into a checkpoint's config.json (the weights are untouched)."""
    config = read_config(directory)
    config.setdefault("metrics", {}).update(metrics)
    _atomic_write(Path(directory) / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
