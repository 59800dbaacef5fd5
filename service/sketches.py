"""Sketches for POST /translate: which way round a sketch is drawn, and whether it holds anything to translate.

The sketch-to-clothing model (models.Pix2PixGenerator) takes light strokes on a dark background, like the
garments of Fashion-MNIST. A sketch drawn by a person is more often dark strokes on white paper. So after
the upload is decoded as every upload is (models.image_files: any accepted format, to 28x28 grayscale), its
polarity is read from its border, where a sketch is background: when the median of the border's 108 pixels
is light (128 or more), the sketch is inverted (255 - v). The caller may also say it (``invert=true`` or
``false``) instead of ``auto``. The route echoes what was done in the X-Sketch-Inverted header.

A sketch whose pixels span fewer than BLANK_RANGE grey levels after decoding is blank (an empty canvas, a
white, black or grey image): there is nothing to translate, and it gets a 422 that says so, instead of a
garment drawn from nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from models.image_files import ACCEPTED_FORMATS, IMAGE_SIZE
from service.errors import InvalidInput

Invert = Literal["auto", "true", "false"]
INVERT_CHOICES: tuple[str, ...] = ("auto", "true", "false")
BLANK_RANGE = 8  # grey levels between the darkest and the lightest pixel below which a sketch is blank
LIGHT = 128  # a border median at least this light is a light background

# The border of a 28x28 image: the first and last rows, and the first and last columns between them.
_BORDER = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
_BORDER[[0, -1], :] = True
_BORDER[:, [0, -1]] = True
_MIDDLE = (int(_BORDER.sum()) - 1) // 2  # the lower middle of the border's 108 pixels


@dataclass(frozen=True)
class Sketch:
    """A sketch ready for the model."""

    pixels: torch.Tensor  # (28, 28) uint8: light strokes on a dark background
    inverted: bool  # whether the upload was inverted to get there


def background(pixels: torch.Tensor | np.ndarray) -> int:
    """The background level of a (28, 28) uint8 sketch: the median of its border pixels (the lower middle one)."""
    border = np.asarray(pixels)[_BORDER]
    return int(np.partition(border, _MIDDLE)[_MIDDLE])


def blank_message(low: int, high: int) -> str:
    found = (
        f"it is one grey ({low}) all over"
        if low == high
        else f"its pixels span only grey levels {low} to {high}, fewer than {BLANK_RANGE} apart"
    )
    return (
        f"the sketch is blank: once converted to 28x28 grayscale {found}, so there are no strokes to turn "
        "into clothing (an empty drawing, or an image all white, all black or all one grey). Send strokes that "
        "stand out from a plain background, light on dark or dark on light, thick enough to survive shrinking to "
        f"28x28, as a {ACCEPTED_FORMATS} file; transparent areas count as black"
    )


def prepare(pixels: torch.Tensor, invert: Invert = "auto") -> Sketch:
    """A decoded (28, 28) uint8 upload -> light strokes on dark (a 422 naming the problem when it is blank)."""
    values = pixels.numpy()  # numpy: a tenth of torch's overhead on so small an array
    low, high = int(values.min()), int(values.max())
    if high - low < BLANK_RANGE:
        raise InvalidInput(blank_message(low, high))
    flip = background(values) >= LIGHT if invert == "auto" else invert == "true"
    return Sketch(torch.from_numpy(255 - values) if flip else pixels, flip)
