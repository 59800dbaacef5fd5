"""TapSumConv2d: the same convolution as nn.Conv2d, a faster layout in inference, nn.Conv2d elsewhere."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.layers import TapSumConv2d


@pytest.mark.parametrize(
    ("out_channels", "in_channels", "kernel", "height", "width", "bias"),
    [
        (1, 32, 3, 28, 28, True),
        (3, 5, 5, 7, 9, False),
        (2, 4, 1, 6, 6, True),
        (1, 3, 3, 1, 1, True),
        (2, 3, (3, 5), 4, 11, True),
    ],
)
def test_inference_matches_conv2d_to_float_rounding(out_channels, in_channels, kernel, height, width, bias) -> None:
    torch.manual_seed(0)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    layer = TapSumConv2d(in_channels, out_channels, kernel, padding=(kh // 2, kw // 2), bias=bias).eval()
    x = torch.randn(5, in_channels, height, width)
    with torch.no_grad():
        expected = F.conv2d(x, layer.weight, layer.bias, padding=(kh // 2, kw // 2))
        got = layer(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # Not the nn.Conv2d path in disguise: the sums run in another order, so some last bits differ.
    if height * width > 1 and in_channels * kh * kw >= 27:
        assert not torch.equal(got, expected)


def test_each_image_gets_the_same_bits_alone_and_in_any_batch() -> None:
    torch.manual_seed(1)
    layer = TapSumConv2d(32, 1, 3, padding=1).eval()
    x = torch.randn(17, 32, 28, 28)
    with torch.no_grad():
        together = layer(x)
        for size in (1, 2, 3, 16):
            for start in range(0, 17 - size + 1, size):
                assert torch.equal(layer(x[start : start + size]), together[start : start + size])


def test_training_and_autograd_use_conv2d_itself() -> None:
    torch.manual_seed(2)
    layer = TapSumConv2d(4, 2, 3, padding=1)
    x = torch.randn(3, 4, 8, 8, requires_grad=True)
    out = layer(x)  # training mode
    assert torch.equal(out, F.conv2d(x, layer.weight, layer.bias, padding=1))
    out.sum().backward()
    assert layer.weight.grad is not None and x.grad is not None
    layer.eval()
    assert torch.equal(layer(x), F.conv2d(x, layer.weight, layer.bias, padding=1))  # autograd on


def test_state_dict_is_that_of_conv2d() -> None:
    layer = TapSumConv2d(4, 1, 3, padding=1)
    plain = torch.nn.Conv2d(4, 1, 3, padding=1)
    plain.load_state_dict(layer.state_dict())
    assert layer.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": 0},
        {"padding": 1, "stride": 2},
        {"padding": 2, "dilation": 2},
        {"padding": 1, "padding_mode": "reflect"},
    ],
)
def test_other_convolutions_are_refused(kwargs) -> None:
    with pytest.raises(ValueError, match="stride-1"):
        TapSumConv2d(4, 1, 3, **kwargs)
    with pytest.raises(ValueError, match="odd kernels"):
        TapSumConv2d(4, 1, 2, padding=0)


def test_transposed_convolution_of_a_lone_image_is_what_it_gets_in_a_batch():
    from models.layers import BatchInvariantConvTranspose2d

    torch.manual_seed(0)
    layer = BatchInvariantConvTranspose2d(256, 64, 3, 2, 1, bias=False).eval()
    x = torch.randn(9, 256, 4, 4)
    with torch.no_grad():
        batch = layer(x)
        alone = torch.cat([layer(x[i : i + 1]) for i in range(len(x))])
    assert alone.shape == (9, 64, 7, 7)
    assert torch.equal(alone, batch)
    # Training and autograd take nn.ConvTranspose2d's own path, with the same weights and result shape.
    assert layer.train()(x[:1]).shape == (1, 64, 7, 7)
