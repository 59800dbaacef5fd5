"""models.image_files.encode_png: valid 8-bit grayscale PNGs that decode to exactly the pixels given."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from models.image_files import decode_image, encode_png


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (3, 500), (280, 280), (1000, 7)])
def test_pillow_reads_back_the_same_pixels(shape) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    data = encode_png(pixels)
    image = Image.open(io.BytesIO(data))
    image.verify()  # checks every chunk's CRC
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (shape[1], shape[0]))
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_the_service_decoder_reads_it_and_tensors_are_taken() -> None:
    pixels = torch.arange(784, dtype=torch.int64).remainder(256).to(torch.uint8).view(28, 28)
    assert torch.equal(decode_image(encode_png(pixels)), pixels)
    assert encode_png(pixels) == encode_png(pixels.numpy())


def test_compressed_and_deterministic() -> None:
    pixels = np.zeros((280, 280), dtype=np.uint8)
    pixels[100:180, 50:230] = 200
    data = encode_png(pixels)
    assert data == encode_png(pixels.copy())
    assert len(data) < 1000  # 78 KB of pixels
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 280 * 281  # a filter byte per row, then the row


@pytest.mark.parametrize(
    "bad",
    [np.zeros((28, 28), dtype=np.float32), np.zeros((28, 28, 3), dtype=np.uint8), np.zeros((0, 5), dtype=np.uint8)],
)
def test_anything_but_a_2d_uint8_image_is_refused(bad) -> None:
    with pytest.raises(ValueError):
        encode_png(bad)
