"""What images go through on their way to the detector: the one transformation suite of the project.

Training draws its augmentations from here and every robustness figure is measured with the named
transformations here, so the two can never drift apart. Every transformation takes uint8 (N, 28, 28)
images and returns uint8 (N, 28, 28) images that went through a real image file (PNG, or the lossy
format the transformation names) and the service's own upload decoder (``models.image_files.decode_image``):
a transformed image is exactly what ``POST /classify`` would judge had a user uploaded it.

Real and fake images are treated alike: a transformation is a function of the pixels and of a seeded
random generator only, never of where an image came from.

Three groups:

- ``SUITE``: the named, fixed-parameter transformations that the robustness report measures
  (JPEG 95/75/50/30, Gaussian blur sigma 0.3/0.5/1.0, sharpening, resize round trips, noise, shifts,
  brightness and contrast, chains of two). ``HEAVY`` names those that destroy most of the evidence.
- ``HELD_OUT``: transformations of other kinds (median filter, gamma, WebP, Lanczos resizing, posterize)
  that training never applies; they measure whether robustness generalizes rather than being memorized.
- ``random_augment``: the training distribution. It draws the *kind* from the suite's kinds and the
  *strength* from a continuous range around the suite's fixed points (JPEG quality 30-95, blur sigma
  0.2-1.2, any intermediate size from 12 to 64 pixels, ...), sometimes chained, so that the suite is a
  sample of what training saw rather than a list of cases to memorise.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from models.image_files import decode_image

SIZE = 28
Op = Callable[[np.ndarray, np.random.Generator], np.ndarray | bytes]  # (28, 28) uint8 -> pixels or file bytes


# Single operations on one uint8 (28, 28) image ------------------------------------------------------------


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L")


def _file(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _decoded(data: np.ndarray | bytes) -> np.ndarray:
    """Through a file and the service's decoder: pixels go as PNG (lossless), bytes as they are."""
    if isinstance(data, np.ndarray):
        data = _file(_pil(data), "PNG")
    return decode_image(data).numpy()


def jpeg(quality: int, *, rgb: bool = False) -> Op:
    """A JPEG file at ``quality`` (grayscale, or an RGB file as a camera or an editor writes)."""

    def op(image: np.ndarray, rng: np.random.Generator) -> bytes:
        im = _pil(image)
        return _file(im.convert("RGB") if rgb else im, "JPEG", quality=int(quality))

    return op


def webp(quality: int) -> Op:
    def op(image: np.ndarray, rng: np.random.Generator) -> bytes:
        return _file(_pil(image), "WEBP", quality=int(quality))

    return op


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalized 1-D Gaussian of standard deviation ``sigma`` pixels, 3 sigma each side (at least 1 tap)."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _separable(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve a (H, W) float image with ``kernel`` along both axes, edges mirrored; float out."""
    r = len(kernel) // 2
    x = np.pad(image.astype(np.float64), r, mode="reflect")  # (H + 2r, W + 2r)
    h, w = image.shape
    rows = sum(kernel[i] * x[i : i + h, :] for i in range(len(kernel)))  # (H, W + 2r)
    return sum(kernel[i] * rows[:, i : i + w] for i in range(len(kernel)))  # (H, W)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def blur(sigma: float) -> Op:
    """Gaussian blur of standard deviation ``sigma`` pixels (exact kernel; Pillow's is a box approximation)."""
    kernel = gaussian_kernel(sigma)

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _to_uint8(_separable(image, kernel))

    return op


def pillow_blur(radius: float) -> Op:
    """Pillow's ``ImageFilter.GaussianBlur`` (an approximation by box blurs: stronger than the exact kernel
    at small radii), as most image editors and scripts blur."""

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(_pil(image).filter(ImageFilter.GaussianBlur(radius)))

    return op


def sharpen(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pillow's ``ImageFilter.SHARPEN``: what an editor's one-click "sharpen" does."""
    return np.asarray(_pil(image).filter(ImageFilter.SHARPEN))


def unsharp(radius: float, percent: int) -> Op:
    """An unsharp mask (the other common sharpening): add ``percent`` of (image - blurred at ``radius``)."""

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(_pil(image).filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=0)))

    return op


_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize(size: int, method: str) -> Op:
    """A round trip 28 -> ``size`` -> 28 with Pillow's ``method`` filter both ways (a thumbnail, a zoom)."""
    resample = _FILTERS[method]

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(_pil(image).resize((size, size), resample).resize((SIZE, SIZE), resample))

    return op


def noise(sigma: float) -> Op:
    """Additive Gaussian noise of ``sigma`` grey levels (a sensor, a scan), rounded and clipped."""

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _to_uint8(image.astype(np.float64) + rng.normal(0.0, sigma, image.shape))

    return op


def shift(pixels: int = 1) -> Op:
    """Move the content by ``pixels`` in a random direction along each axis (never both zero); black enters."""

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dx, dy = 0, 0
        while dx == 0 and dy == 0:
            dx, dy = (int(v) for v in rng.integers(-pixels, pixels + 1, 2))
        p = pixels
        padded = np.pad(image, p)  # (28 + 2p, 28 + 2p)
        return padded[p - dy : p - dy + SIZE, p - dx : p - dx + SIZE].copy()

    return op


def brightness(factor: float) -> Op:
    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(ImageEnhance.Brightness(_pil(image)).enhance(factor))

    return op


def contrast(factor: float) -> Op:
    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(ImageEnhance.Contrast(_pil(image)).enhance(factor))

    return op


def median(size: int) -> Op:
    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(_pil(image).filter(ImageFilter.MedianFilter(size)))

    return op


def gamma(value: float) -> Op:
    """Grey levels mapped through v -> 255 (v / 255) ** value (a display or a camera curve)."""
    table = _to_uint8(255.0 * (np.arange(256) / 255.0) ** value)

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return table[image]

    return op


def posterize(bits: int) -> Op:
    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        return image & mask

    return op


def identity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image


def chain(*ops: Op) -> Op:
    """Each op in turn, every intermediate result decoded as an upload would be."""

    def op(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for o in ops:
            image = _decoded(o(image, rng))
        return image

    return op


# The named suite ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """A named transformation: what it does (``describe``), its kind, and the operation."""

    name: str
    kind: str
    describe: str
    op: Op

    def __call__(self, images: torch.Tensor | np.ndarray, seed: int = 0) -> torch.Tensor:
        """uint8 (N, 28, 28) -> uint8 (N, 28, 28), each image through the op, a file and the upload decoder.

        ``seed`` fixes the random parts (noise, shift directions); the same images and seed give the same output.
        """
        return apply_each(images, [self.op] * len(images), seed)


def apply_each(images: torch.Tensor | np.ndarray, ops: Sequence[Op], seed: int | np.random.Generator) -> torch.Tensor:
    """Image i through ``ops[i]``, then a file and the upload decoder; uint8 (N, 28, 28) on the CPU."""
    x = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"expected uint8 images of shape (N, 28, 28), got {x.dtype} {x.shape}")
    if len(ops) != len(x):
        raise ValueError(f"{len(x)} images but {len(ops)} operations")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = np.empty_like(x)
    for i, (image, op) in enumerate(zip(x, ops, strict=True)):
        out[i] = _decoded(op(image, rng))
    return torch.from_numpy(out)


def _suite(*entries: tuple[str, str, str, Op]) -> dict[str, Transform]:
    return {name: Transform(name, kind, describe, op) for name, kind, describe, op in entries}


SUITE: dict[str, Transform] = _suite(
    ("clean", "none", "a PNG upload of the pixels as they are", identity),
    ("jpeg95", "jpeg", "JPEG at quality 95", jpeg(95)),
    ("jpeg75", "jpeg", "JPEG at quality 75", jpeg(75)),
    ("jpeg50", "jpeg", "JPEG at quality 50", jpeg(50)),
    ("jpeg30", "jpeg", "JPEG at quality 30", jpeg(30)),
    ("blur0.3", "blur", "Gaussian blur, sigma 0.3 px", blur(0.3)),
    ("blur0.5", "blur", "Gaussian blur, sigma 0.5 px", blur(0.5)),
    ("blur1.0", "blur", "Gaussian blur, sigma 1.0 px", blur(1.0)),
    ("pillow-blur0.3", "blur", "Pillow's GaussianBlur(0.3), as editors and scripts blur", pillow_blur(0.3)),
    ("sharpen", "sharpen", "Pillow's ImageFilter.SHARPEN", sharpen),
    ("resize56-bilinear", "resize", "28 -> 56 -> 28, bilinear", resize(56, "bilinear")),
    ("resize56-bicubic", "resize", "28 -> 56 -> 28, bicubic", resize(56, "bicubic")),
    ("resize14-bilinear", "resize", "28 -> 14 -> 28, bilinear", resize(14, "bilinear")),
    ("resize14-bicubic", "resize", "28 -> 14 -> 28, bicubic", resize(14, "bicubic")),
    ("noise2", "noise", "additive Gaussian noise, sigma 2 grey levels", noise(2.0)),
    ("noise5", "noise", "additive Gaussian noise, sigma 5 grey levels", noise(5.0)),
    ("shift1", "shift", "content moved by 1 px (random direction)", shift(1)),
    ("brightness+10", "tone", "brightness x 1.1", brightness(1.1)),
    ("brightness-10", "tone", "brightness x 0.9", brightness(0.9)),
    ("contrast+10", "tone", "contrast x 1.1", contrast(1.1)),
    ("contrast-10", "tone", "contrast x 0.9", contrast(0.9)),
    (
        "resize56-bilinear+jpeg75",
        "chain",
        "28 -> 56 -> 28 bilinear, then JPEG 75",
        chain(resize(56, "bilinear"), jpeg(75)),
    ),
    ("blur0.5+jpeg75", "chain", "blur sigma 0.5, then JPEG 75", chain(blur(0.5), jpeg(75))),
    ("sharpen+jpeg75", "chain", "sharpen, then JPEG 75", chain(sharpen, jpeg(75))),
)

# Transformations that erase most of what tells a fake apart: reported, and judged by calibration (the
# detector should be unsure rather than confidently wrong), not by accuracy targets.
HEAVY: frozenset[str] = frozenset({"jpeg30", "blur1.0", "resize14-bilinear", "resize14-bicubic"})

HELD_OUT: dict[str, Transform] = _suite(
    ("median3", "median", "3x3 median filter", median(3)),
    ("gamma0.8", "gamma", "gamma curve 0.8 (brighter mid-tones)", gamma(0.8)),
    ("webp70", "webp", "WebP at quality 70", webp(70)),
    ("resize40-lanczos", "resize-lanczos", "28 -> 40 -> 28, Lanczos", resize(40, "lanczos")),
    ("posterize5", "posterize", "grey levels cut to 5 bits", posterize(5)),
)

ALL: dict[str, Transform] = {**SUITE, **HELD_OUT}


def get(name: str) -> Transform:
    try:
        return ALL[name]
    except KeyError:
        raise ValueError(f"unknown transformation {name!r}; known: {', '.join(ALL)}") from None


# The training distribution --------------------------------------------------------------------------------

# The kinds training draws from (each with its range of strengths); none of HELD_OUT's kinds is among them.
TRAIN_KINDS: tuple[str, ...] = ("jpeg", "blur", "sharpen", "resize", "noise", "shift", "tone")


@dataclass
class AugmentOptions:
    """How training images are processed, real and fake alike (every probability in [0, 1])."""

    p: float = 0.8  # probability that an image is processed at all (otherwise: a plain PNG upload)
    chain_p: float = 0.3  # of the processed ones: probability of a second operation after the first
    kinds: tuple[str, ...] = TRAIN_KINDS  # what may be drawn, each kind equally likely
    jpeg_quality: tuple[int, int] = (30, 95)
    blur_sigma: tuple[float, float] = (0.2, 1.2)
    resize_size: tuple[int, int] = (12, 64)  # the intermediate size of a round trip
    noise_sigma: tuple[float, float] = (0.5, 6.0)
    tone: tuple[float, float] = (0.85, 1.15)  # brightness and contrast factors

    @classmethod
    def from_json(cls, recorded: dict[str, object]) -> AugmentOptions:
        """The options a checkpoint's ``training.augment`` recorded (JSON turns tuples into lists)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(recorded) - names
        if unknown:
            raise ValueError(
                f"recorded augmentations {sorted(unknown)} are not this suite's ({sorted(names)}): the checkpoint "
                "was trained with another augmentation scheme"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})  # type: ignore[arg-type]

    def check(self) -> None:
        """Refuse impossible settings; messages name the train-detector flag (or the field) and the value."""
        for name, flag in (("p", "--augment-p"), ("chain_p", "--chain-p")):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{flag} is a probability and must be in [0, 1] (got {value})")
        unknown = set(self.kinds) - set(TRAIN_KINDS)
        if unknown or not self.kinds:
            raise ValueError(
                f"--augment-kinds must be a non-empty subset of {' '.join(TRAIN_KINDS)} (got {self.kinds})"
            )
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"--jpeg-quality LO HI must satisfy 1 <= LO <= HI <= 100 (got {lo} {hi})")
        for name, flag in (("blur_sigma", "--blur-sigma"), ("noise_sigma", "noise_sigma"), ("tone", "tone")):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{flag} LO HI must satisfy 0 < LO <= HI (got {lo} {hi})")
        lo, hi = self.resize_size
        if not 2 <= lo <= hi:
            raise ValueError(f"resize_size LO HI must satisfy 2 <= LO <= HI (got {lo} {hi})")


def random_op(rng: np.random.Generator, opts: AugmentOptions) -> Op:
    """One operation: a kind drawn uniformly from ``opts.kinds``, its strength uniformly from its range."""
    kind = opts.kinds[int(rng.integers(len(opts.kinds)))]
    if kind == "jpeg":
        return jpeg(int(rng.integers(opts.jpeg_quality[0], opts.jpeg_quality[1] + 1)), rgb=bool(rng.random() < 0.5))
    if kind == "blur":
        sigma = float(rng.uniform(*opts.blur_sigma))
        return blur(sigma) if rng.random() < 0.5 else pillow_blur(sigma)
    if kind == "sharpen":
        if rng.random() < 0.5:
            return sharpen
        return unsharp(float(rng.uniform(0.5, 2.0)), int(rng.integers(50, 201)))
    if kind == "resize":
        size = int(rng.integers(opts.resize_size[0], opts.resize_size[1] + 1))
        return resize(size, ("bilinear", "bicubic", "box")[int(rng.integers(3))])
    if kind == "noise":
        return noise(float(rng.uniform(*opts.noise_sigma)))
    if kind == "shift":
        return shift(int(rng.integers(1, 3)))
    factor = float(rng.uniform(*opts.tone))
    return brightness(factor) if rng.random() < 0.5 else contrast(factor)


def random_augment(images: torch.Tensor, rng: np.random.Generator, opts: AugmentOptions) -> torch.Tensor:
    """Training's processing of uint8 (N, 28, 28) images: each independently, none, one or two operations
    drawn by ``random_op``, and always a file and the upload decoder. Returns uint8 (N, 28, 28) on the CPU."""
    ops: list[Op] = []
    for _ in range(len(images)):
        if rng.random() >= opts.p:
            ops.append(identity)
        elif rng.random() < opts.chain_p:
            ops.append(chain(random_op(rng, opts), random_op(rng, opts)))
        else:
            ops.append(random_op(rng, opts))
    return apply_each(images, ops, rng)
