"""The Fashion-MNIST label set: ids 0-9, their names, and forgiving lookup."""

from __future__ import annotations

import re

NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(NAMES)


class UnknownLabelError(ValueError):
    """Raised for a label that is neither an id 0-9 nor a class name."""


def _key(text: str) -> str:
    # Case, spaces and punctuation do not matter: "ankle boot" == "Ankle-Boot".
    return re.sub(r"[^a-z0-9]", "", text.lower())


_ALIASES: dict[str, int] = {_key(name): i for i, name in enumerate(NAMES)}
# Common short forms of the first class, whose official name holds a slash.
_ALIASES.update({"tshirt": 0, "top": 0, "tee": 0, "boot": 9, "ankleboots": 9})
for _i, _name in enumerate(NAMES):
    _ALIASES.setdefault(_key(_name) + "s", _i)  # plurals: "trousers", "sneakers"


def accepted() -> str:
    """One line that lists every accepted label, for error messages."""
    return "an id 0-9 or a class name: " + ", ".join(f"{i}={n}" for i, n in enumerate(NAMES))


def parse_label(value: int | str) -> int:
    """Return the class id for an id (int or digit string) or a class name.

    Raises UnknownLabelError naming the valid labels for anything else.
    """
    if isinstance(value, bool):
        raise UnknownLabelError(f"unknown label {value!r}; expected {accepted()}")
    if isinstance(value, int):
        if 0 <= value < NUM_CLASSES:
            return value
        raise UnknownLabelError(f"label id {value} is out of range; expected {accepted()}")
    if not isinstance(value, str):
        raise UnknownLabelError(f"unknown label {value!r}; expected {accepted()}")
    text = value.strip()
    if re.fullmatch(r"[+-]?\d{1,6}", text):
        return parse_label(int(text))
    key = _key(text)
    if key in _ALIASES:
        return _ALIASES[key]
    shown = text if len(text) <= 40 else text[:40] + "…"
    raise UnknownLabelError(f"unknown label {shown!r}; expected {accepted()}")


def label_name(label: int) -> str:
    """The official class name of an id."""
    return NAMES[parse_label(label)]
