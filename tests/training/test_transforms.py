"""The transformation suite: each one changes images as it says, the same way for real and fake."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from models.image_files import decode_image
from training import transforms as T


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Garment-like uint8 images: a bright blob with texture on black, like Fashion-MNIST."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    out = []
    for _ in range(12):
        cy, cx, r = rng.uniform(11, 17), rng.uniform(11, 17), rng.uniform(6, 10)
        blob = (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2) * rng.uniform(120, 230)
        out.append(np.clip(blob + rng.normal(0, 12, (28, 28)) * (blob > 0), 0, 255))
    return torch.from_numpy(np.stack(out).astype(np.uint8))


def _through_file(im: Image.Image, fmt: str = "PNG", **kw) -> np.ndarray:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return decode_image(buf.getvalue()).numpy()


def test_every_transformation_returns_uint8_images_of_the_same_shape(images):
    for t in T.ALL.values():
        out = t(images, seed=1)
        assert out.dtype == torch.uint8 and out.shape == images.shape, t.name


def test_clean_is_the_identity_and_every_other_one_changes_the_images(images):
    assert torch.equal(T.SUITE["clean"](images), images)
    for name, t in T.ALL.items():
        if name != "clean":
            assert not torch.equal(t(images, seed=1), images), name


def test_a_transformation_is_a_function_of_pixels_and_seed_only(images):
    """Real and fake go through the same function: equal pixels and seed give equal output, whoever made them."""
    for t in T.ALL.values():
        assert torch.equal(t(images, seed=5), t(images.clone(), seed=5)), t.name
    noisy = T.SUITE["noise5"]
    assert not torch.equal(noisy(images, seed=5), noisy(images, seed=6))


def test_jpeg_is_a_real_jpeg_file_at_that_quality(images):
    for q in (95, 75, 50, 30):
        expected = np.stack([_through_file(Image.fromarray(im), "JPEG", quality=q) for im in images.numpy()])
        assert np.array_equal(T.SUITE[f"jpeg{q}"](images).numpy(), expected)
    err = {q: (T.SUITE[f"jpeg{q}"](images).float() - images.float()).abs().mean() for q in (95, 30)}
    assert err[95] < err[30]  # lower quality, larger error


def test_blur_is_an_exact_gaussian_that_grows_with_sigma(images):
    k = T.gaussian_kernel(0.5)
    assert k.sum() == pytest.approx(1.0) and np.allclose(k, k[::-1]) and k.argmax() == len(k) // 2
    # A single bright pixel spreads into the kernel's outer product (the 2-D Gaussian).
    dot = np.zeros((1, 28, 28), np.uint8)
    dot[0, 14, 14] = 200
    out = T.SUITE["blur1.0"](dot)[0].numpy().astype(float)
    k1 = T.gaussian_kernel(1.0)
    r = len(k1) // 2
    assert np.allclose(out[14 - r : 15 + r, 14 - r : 15 + r], np.rint(200 * np.outer(k1, k1)), atol=1)
    diffs = [(T.SUITE[n](images).float() - images.float()).abs().mean() for n in ("blur0.3", "blur0.5", "blur1.0")]
    assert diffs[0] < diffs[1] < diffs[2]


def test_sharpen_and_resize_match_pillow(images):
    pil = [Image.fromarray(im) for im in images.numpy()]
    assert np.array_equal(
        T.SUITE["sharpen"](images).numpy(), np.stack([_through_file(im.filter(ImageFilter.SHARPEN)) for im in pil])
    )
    bl = Image.Resampling.BILINEAR
    expected = np.stack([_through_file(im.resize((14, 14), bl).resize((28, 28), bl)) for im in pil])
    assert np.array_equal(T.SUITE["resize14-bilinear"](images).numpy(), expected)


def test_noise_has_the_stated_strength(images):
    flat = torch.full((200, 28, 28), 128, dtype=torch.uint8)  # no clipping at mid-grey
    for sigma in (2, 5):
        d = T.SUITE[f"noise{sigma}"](flat, seed=0).float() - 128
        assert float(d.std()) == pytest.approx(sigma, rel=0.05)


def test_shift_moves_content_by_one_pixel_and_fills_black(images):
    out = T.SUITE["shift1"](images, seed=3).numpy()
    for moved, im in zip(out, images.numpy(), strict=True):
        matches = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy, dx) != (0, 0) and np.array_equal(moved, np.roll(np.pad(im, 1), (dy, dx), (0, 1))[1:-1, 1:-1])
        ]
        assert len(matches) == 1


def test_brightness_and_contrast_change_tone_by_ten_percent(images):
    up = T.SUITE["brightness+10"](images).float()
    mask = (images > 30) & (images < 200)
    ratio = up[mask] / images.float()[mask]
    assert float(ratio.mean()) == pytest.approx(1.1, abs=0.02)
    lo = T.SUITE["contrast-10"](images).float()
    assert float(lo.std()) < float(images.float().std())


def test_chains_apply_their_parts_in_order(images):
    resized = T.SUITE["resize56-bilinear"](images)
    assert torch.equal(T.SUITE["resize56-bilinear+jpeg75"](images), T.SUITE["jpeg75"](resized))


def test_held_out_kinds_are_never_drawn_in_training():
    assert not {t.kind for t in T.HELD_OUT.values()} & set(T.TRAIN_KINDS)
    assert set(T.HEAVY) <= set(T.SUITE)


def test_random_augment_is_seeded_processes_the_share_asked_and_checks_input(images):
    opts = T.AugmentOptions()
    a = T.random_augment(images, np.random.default_rng(7), opts)
    b = T.random_augment(images, np.random.default_rng(7), opts)
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)
    none = T.random_augment(images, np.random.default_rng(7), T.AugmentOptions(p=0.0))
    assert torch.equal(none, images)  # a plain PNG upload: lossless
    with pytest.raises(ValueError, match=r"uint8 images of shape \(N, 28, 28\)"):
        T.random_augment(images.float(), np.random.default_rng(0), opts)


def test_random_augment_draws_only_the_kinds_asked(images):
    only_jpeg = T.AugmentOptions(p=1.0, chain_p=0.0, kinds=("jpeg",), jpeg_quality=(60, 60))
    out = T.random_augment(images, np.random.default_rng(3), only_jpeg).numpy()
    gray = np.stack([_through_file(Image.fromarray(im), "JPEG", quality=60) for im in images.numpy()])
    rgb = np.stack([_through_file(Image.fromarray(im).convert("RGB"), "JPEG", quality=60) for im in images.numpy()])
    assert all(np.array_equal(o, g) or np.array_equal(o, c) for o, g, c in zip(out, gray, rgb, strict=True))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"p": 1.5}, "--augment-p is a probability"),
        ({"kinds": ("median",)}, "--augment-kinds must be a non-empty subset"),
        ({"jpeg_quality": (90, 10)}, "--jpeg-quality LO HI"),
        ({"resize_size": (1, 40)}, "resize_size"),
    ],
)
def test_bad_augment_options_are_refused_with_their_name(options, message):
    with pytest.raises(ValueError, match=message):
        T.AugmentOptions(**options).check()


def test_augment_options_round_trip_through_json_and_refuse_another_scheme():
    opts = T.AugmentOptions(jpeg_quality=(40, 90))
    import dataclasses
    import json

    recorded = json.loads(json.dumps(dataclasses.asdict(opts)))
    assert T.AugmentOptions.from_json(recorded) == opts
    with pytest.raises(ValueError, match="another augmentation scheme"):
        T.AugmentOptions.from_json({"shift_p": 0.5, "jpeg_p": 0.4})


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown transformation 'jpeg10'"):
        T.get("jpeg10")
