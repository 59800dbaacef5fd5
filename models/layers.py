"""Layers shared by the networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class BatchInvariantLinear(nn.Linear):
    """nn.Linear whose output rows, in eval mode, do not depend on the other rows of the batch.

    The service batches requests and promises that an answer does not depend on what it was batched
    with. Convolutions keep that by themselves (each image is its own sum), but a float32 matrix
    product does not: BLAS picks kernels and blocking by the number of rows, so a row computed in a
    batch of 5 can differ in its last bits from the same row computed alone (measured with MKL on
    AVX-512: a served image in about a hundred had a pixel one grey level off, and one /classify
    confidence in 500 differed in its fourth decimal). Summed in float64 the differences are some
    1e-16 relative, far below float32's resolution, and vanish in the rounding back to float32.

    Training is unchanged (float32, autograd as usual). In eval mode the float64 copy of the weight
    is made once per weight version: it holds a view of the float32 weight it was made from, so
    that storage cannot be reused under it, and any in-place update bumps the version it checks.
    A parametrized weight (spectral norm) is a new tensor on every access and is converted each time.
    State-dict keys and checkpoints are those of nn.Linear.
    """

    _cache: tuple[torch.Tensor, int, torch.Tensor, torch.Tensor | None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        weight64, bias64 = self._float64_parameters()
        flat = x.reshape(-1, x.shape[-1]).double()
        out = flat @ weight64 if bias64 is None else torch.addmm(bias64, flat, weight64)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _float64_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight, bias = self.weight, self.bias
        if parametrize.is_parametrized(self):
            return weight.detach().double().t(), None if bias is None else bias.detach().double()
        version = weight._version + (0 if bias is None else bias._version)
        cache = self._cache
        if cache is None or cache[0].data_ptr() != weight.data_ptr() or cache[1] != version:
            weight64 = weight.detach().double().t().contiguous()
            bias64 = None if bias is None else bias.detach().double()
            cache = self._cache = (weight.detach(), version, weight64, bias64)
        return cache[2], cache[3]


class BatchInvariantConv2d(nn.Conv2d):
    """nn.Conv2d whose output for a lone image, in inference, is what the same image gets in a batch.

    On the CPU, PyTorch runs the 3x3 convolution of a batch of two or more through oneDNN, but that of a
    single small image through its own im2col path; both are exact per image but sum in different
    orders, so an image classified alone got a confidence a few 1e-7 away from the same image in a
    batch (after rounding, one /classify answer in 500 differed in its last digit). So in inference
    (eval mode, no autograd) on the CPU, a batch of one calls oneDNN's convolution directly, which is
    what a batch takes (the shipped detector's features: 0.57 ms against 0.50 ms, one thread).
    Elsewhere (training, autograd for GradCAM, CUDA, no oneDNN) it is nn.Conv2d. State-dict keys and
    checkpoints are those of nn.Conv2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return batch_invariant_conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def batch_invariant_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> torch.Tensor:
    """F.conv2d (zero padding given as numbers), except that a lone float32 image on the CPU without autograd
    takes oneDNN's convolution, as a batch of two or more does (see BatchInvariantConv2d); for a fixed kernel
    that is no layer, such as the detector's high-pass filter."""
    if (
        x.shape[0] != 1
        or torch.is_grad_enabled()
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or not torch.backends.mkldnn.is_available()
    ):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)


class BatchInvariantConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose output for a lone image, in inference, is what the same image gets in a batch.

    The same trouble as BatchInvariantConv2d's (PyTorch's CPU path for a single image sums in another order
    than oneDNN's path for a batch, a few 1e-7 apart, enough to move a quantized pixel by one grey level now
    and then), but torch has no direct entry to oneDNN's transposed convolution. So in inference (eval mode,
    no autograd) on the CPU in float32, a lone image runs as a batch of two copies of itself, which takes
    the batch path, and the first is kept. Elsewhere it is nn.ConvTranspose2d; state-dict keys and
    checkpoints are nn.ConvTranspose2d's.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (
            self.training
            or x.dim() != 4
            or x.shape[0] != 1
            or torch.is_grad_enabled()
            or x.device.type != "cpu"
            or x.dtype != torch.float32
        ):
            return super().forward(x, output_size)
        return super().forward(torch.cat([x, x]), output_size)[:1]


class TapSumConv2d(nn.Conv2d):
    """A stride-1, same-padded nn.Conv2d with few output channels, computed in inference as one matrix
    product per image (a map per output channel and kernel tap), then the maps added up, each shifted
    by its tap's offset.

    The generator's last layer (32 channels to 1, 3x3) is the slowest of its layers for its arithmetic:
    a single output channel leaves the vector units of oneDNN's convolution mostly empty, and PyTorch's
    own path for a lone image unfolds the input ninefold. Laid out as (taps x channels) @ (channels x
    pixels) it is the same multiply-adds as one dense product, and the nine shifted additions are cheap
    elementwise work: 0.016 against 0.067 ms an image at batch 32, and 0.07 against 0.12 ms for a lone
    image, one thread (``python bench/components.py``). Batch-invariant by construction: every image is
    its own product of the same shape, whatever it is batched with. The sums run in another order than
    nn.Conv2d's, so outputs differ from it by float32 rounding (about 1e-6).

    Used in eval mode without autograd on the CPU in float32; elsewhere (training, autograd, CUDA) it
    is nn.Conv2d. State-dict keys and checkpoints are those of nn.Conv2d.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        kh, kw = self.kernel_size
        if (
            self.stride != (1, 1)
            or self.dilation != (1, 1)
            or self.groups != 1
            or self.padding_mode != "zeros"
            or self.padding != ((kh - 1) // 2, (kw - 1) // 2)
            or kh % 2 == 0
            or kw % 2 == 0
        ):
            raise ValueError("TapSumConv2d is for stride-1 convolutions with odd kernels and 'same' zero padding")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.training
            or torch.is_grad_enabled()
            or x.device.type != "cpu"
            or x.dtype != torch.float32
            or x.dim() != 4
        ):
            return super().forward(x)
        batch, channels, height, width = x.shape
        outputs, (kh, kw), (ph, pw) = self.out_channels, self.kernel_size, self.padding
        # (O, C, kh, kw) -> (O*kh*kw, C): row o*kh*kw + tap is output o's weights for that tap.
        taps = self.weight.permute(0, 2, 3, 1).reshape(outputs * kh * kw, channels)
        pixels = x.reshape(batch, channels, height * width)
        maps = torch.empty(batch, outputs * kh * kw, height * width)
        for i in range(batch):
            torch.mm(taps, pixels[i], out=maps[i])
        # Zero borders, so that map (ky, kx) read at (i + ky, j + kx) is the tap's term at output (i, j).
        padded = F.pad(maps.view(batch, outputs, kh * kw, height, width), (pw, pw, ph, ph))
        out = padded[:, :, 0, :height, :width].clone()
        if self.bias is not None:
            out += self.bias.view(1, outputs, 1, 1)
        for tap in range(1, kh * kw):
            ky, kx = divmod(tap, kw)
            out += padded[:, :, tap, ky : ky + height, kx : kx + width]
        return out
