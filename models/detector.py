"""The real/fake detector: a small CNN that tells Fashion-MNIST images from GAN fakes.

Why this architecture detects best (on 28x28 images, after uint8 quantization):

- GAN fakes carry their tell-tale signs in the highest frequencies. The project's
  generator (and DCGAN-style ones generally) upsamples 7 -> 14 -> 28 with 4x4
  stride-2 transposed convolutions, whose uneven kernel overlap leaves a faint
  period-2 checkerboard; tanh outputs also quantize to a different histogram of
  grey levels than a scanned photograph (flat backgrounds that are not quite 0,
  too-smooth ramps, too-clean edges). These are pixel-level, not shape-level, cues.
- So the network looks at full resolution first: two stride-1 3x3 convolutions
  at 28x28 before anything downsamples (a stride-2 first layer would alias the
  period-2 pattern away), plus a fixed Laplacian high-pass channel beside the
  pixels so the residual is there from the first layer.
- No spectral normalization. A GAN discriminator is kept 1-Lipschitz so that it
  gives the generator smooth gradients; a detector wants the opposite: a large
  response to a small, high-frequency difference. Batch norm (per-image in eval
  mode, so served answers do not depend on the batch) trains it fast instead.
- Global mean *and* max pooling: the mean measures how much of an artifact an
  image holds everywhere, the max catches one local flaw; both are invariant to
  the +-1 pixel shifts that uploads carry (and that training applies).
- The label is optional. It enters as a projection term (as in the project's
  discriminator) through an embedding with one extra row, "unknown", which is
  used when no label is given; training drops labels at random so the detector
  works, and is calibrated, both ways.

Contract (shared with the service): ``detector(x, y)`` takes x in -1..1 of shape
(B, 1, 28, 28) and y of shape (B,) int64 or None, and returns a logit (B,),
positive = real, like the Discriminator. Calibrate by dividing the logit by
``checkpoint["metrics"]["temperature"]`` when the checkpoint holds one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoint import register
from models.labels import NUM_CLASSES
from models.layers import BatchInvariantConv2d, BatchInvariantLinear, batch_invariant_conv2d

IMAGE_SIZE = 28


@dataclass
class DetectorConfig:
    num_classes: int = NUM_CLASSES  # known labels; one more embedding row means "unknown". 0: label ignored
    channels: int = 16  # width at 28x28; 2x at 14x14, 4x at 7x7
    high_pass: bool = True  # feed a fixed Laplacian residual beside the pixels
    dropout: float = 0.0  # while training, the share of pooled features zeroed before the verdict; none when judging


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        BatchInvariantConv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),  # see models.layers
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.1),
    )


@register
class Detector(nn.Module):
    """detector(x, y=None) -> (B,) logit; positive means "real"."""

    config_class = DetectorConfig

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        if config.num_classes < 0 or config.channels < 1:
            raise ValueError("num_classes must be >= 0 and channels >= 1")
        if not 0.0 <= config.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.config = config
        c = config.channels
        # A constant, not a weight: kept out of the checkpoint (persistent=False).
        laplacian = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]) / 4.0
        self.register_buffer("laplacian", laplacian.view(1, 1, 3, 3), persistent=False)
        c_in = 2 if config.high_pass else 1
        self.features = nn.Sequential(
            _conv_block(c_in, c),  # (B, C, 28, 28): full resolution, where the artifacts are
            _conv_block(c, c),
            _conv_block(c, 2 * c, stride=2),  # (B, 2C, 14, 14)
            _conv_block(2 * c, 2 * c),
            _conv_block(2 * c, 4 * c, stride=2),  # (B, 4C, 7, 7)
            _conv_block(4 * c, 4 * c),
        )
        width = 8 * c  # mean and max pooled
        self.head = BatchInvariantLinear(width, 1)  # a verdict must not depend on its batch (models.layers)
        if config.num_classes:
            self.embed = nn.Embedding(config.num_classes + 1, width)  # last row: "unknown"
            nn.init.normal_(self.embed.weight, std=0.01)

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    @property
    def unknown_label(self) -> int:
        """The embedding row used when no label is given."""
        return self.config.num_classes

    def label_index(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Map labels to embedding rows: None, or a negative entry, means "unknown". Returns (B,) int64."""
        unknown = torch.full((batch,), self.unknown_label, dtype=torch.long, device=device)
        if y is None:
            return unknown
        if y.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},), got {tuple(y.shape)}")
        y = y.to(device=device, dtype=torch.long)
        if bool((y >= self.config.num_classes).any()):
            raise ValueError(f"label ids must be < {self.config.num_classes} (or negative for unknown)")
        return torch.where(y < 0, unknown, y)

    @torch.no_grad()
    def widened(self, channels: int) -> Detector:
        """A copy of this detector at a larger width that computes the same logits (up to float rounding).

        Each layer keeps its trained channels; the new ones get fresh incoming weights (the layer's default
        init) and zero outgoing weights (into the next layer, the head and the label embedding), so at first
        they change nothing, and training puts them to use. Batch-norm statistics of the new channels start
        at their defaults. This is how a fine-tuning run adds capacity without starting over.
        """
        if channels < self.config.channels:
            raise ValueError(f"cannot narrow a detector from width {self.config.channels} to {channels}")
        wide = Detector(dataclasses.replace(self.config, channels=channels)).to(self.laplacian.device)
        for old_block, new_block in zip(self.features, wide.features, strict=True):
            old_conv, old_bn = old_block[0], old_block[1]
            new_conv, new_bn = new_block[0], new_block[1]
            out_c, in_c = old_conv.weight.shape[:2]
            new_conv.weight[:out_c, :in_c] = old_conv.weight
            new_conv.weight[:out_c, in_c:] = 0.0  # new inputs leave the old outputs as they were
            new_bn.weight[:out_c] = old_bn.weight
            new_bn.bias[:out_c] = old_bn.bias
            new_bn.running_mean[:out_c] = old_bn.running_mean
            new_bn.running_var[:out_c] = old_bn.running_var
            new_bn.num_batches_tracked.copy_(old_bn.num_batches_tracked)
        # The pooled features are the last layer's 4C channel means, then their 4C maxima: the old ones are
        # the first 4c of each half.
        old_w, new_w = 4 * self.config.channels, 4 * channels
        at = torch.cat([torch.arange(old_w), new_w + torch.arange(old_w)])
        wide.head.weight.zero_()
        wide.head.weight[:, at] = self.head.weight
        wide.head.bias.copy_(self.head.bias)
        if self.conditional:
            wide.embed.weight.zero_()
            wide.embed.weight[:, at] = self.embed.weight
        return wide

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        if self.config.high_pass:
            # Alone or in a batch, the same sums (models.layers): a verdict must not depend on its batch.
            residual = batch_invariant_conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.laplacian.to(x.dtype))
            x = torch.cat([x, residual], dim=1)  # (B, 2, 28, 28)
        h = self.features(x)  # (B, 4C, 7, 7)
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # (B, 8C)
        if self.training and self.config.dropout:  # read at every call: a fine-tuning run may set it
            h = F.dropout(h, self.config.dropout)
        logit = self.head(h).squeeze(1)  # (B,)
        if self.conditional:
            rows = self.label_index(y, x.shape[0], x.device)
            logit = logit + (self.embed(rows) * h).sum(dim=1)  # projection term
        return logit


@dataclass
class DetectorEnsembleConfig:
    members: list[DetectorConfig] = dataclasses.field(default_factory=list)  # each member's architecture

    def __post_init__(self) -> None:
        # Read back from config.json, each member is a dict of DetectorConfig settings.
        members = []
        for i, m in enumerate(self.members):
            if isinstance(m, dict):
                unknown = set(m) - {f.name for f in dataclasses.fields(DetectorConfig)}
                if unknown:
                    raise ValueError(f"member {i}: unknown Detector settings {sorted(unknown)}")
                m = DetectorConfig(**m)
            if not isinstance(m, DetectorConfig):
                raise ValueError(f"member {i}: expected Detector settings, got {type(m).__name__}")
            members.append(m)
        self.members = members


@register
class DetectorEnsemble(nn.Module):
    """Several detectors judging together: ensemble(x, y=None) -> (B,) the mean of their raw logits.

    Detectors trained apart err on mostly different images (docs/detector.md), so the mean of their logits
    separates better than either; it is calibrated with its own temperature, fitted on validation images
    none of its members trained on (``python -m training ensemble-detector``). Same contract as Detector:
    x in -1..1 (B, 1, 28, 28), y (B,) int64 with negative entries (or None) meaning "unknown"; positive = real.
    """

    config_class = DetectorEnsembleConfig

    def __init__(self, config: DetectorEnsembleConfig) -> None:
        super().__init__()
        if len(config.members) < 2:
            raise ValueError("an ensemble needs at least two members")
        classes = {m.num_classes for m in config.members}
        if len(classes) != 1:
            raise ValueError(f"members must take the same labels, got num_classes {sorted(classes)}")
        self.config = config
        self.members = nn.ModuleList(Detector(m) for m in config.members)

    @classmethod
    def of(cls, detectors: list[Detector]) -> DetectorEnsemble:
        """An ensemble holding copies of these detectors' weights."""
        ensemble = cls(DetectorEnsembleConfig(members=[dataclasses.replace(d.config, dropout=0.0) for d in detectors]))
        for member, detector in zip(ensemble.members, detectors, strict=True):
            member.load_state_dict(detector.state_dict())
        return ensemble

    @property
    def conditional(self) -> bool:
        return self.members[0].conditional

    @property
    def unknown_label(self) -> int:
        return self.members[0].unknown_label

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        logits = [member(x, y) for member in self.members]  # each (B,)
        return torch.stack(logits).mean(dim=0)


# The classes a detector checkpoint may hold (``load_model(..., expected=DETECTORS)``).
DETECTORS: tuple[type[nn.Module], ...] = (Detector, DetectorEnsemble)
