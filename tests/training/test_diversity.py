"""What each diversity measure of the GAN's training computes: DiffAugment, R1, mode seeking, lr decay."""

import json

import pytest
import torch

from models import load_model
from tests.training.test_train import _assert_same, _weights, tiny_options
from training.augment import BACKGROUND, cutout, diff_augment, parse_policy, translation
from training.loop import Trainer, TrainOptions, fit_to_device
from training.losses import mode_seeking, r1_penalty


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_policy_names_are_checked():
    assert parse_policy("translation, cutout") == ("translation", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(ValueError, match="unknown augmentation hue"):
        parse_policy("translation,hue")


def test_translation_shifts_each_image_by_whole_pixels_within_an_eighth():
    x = torch.full((64, 1, 28, 28), BACKGROUND)
    x[:, :, 14, 14] = 1.0  # one lit pixel per image
    out = translation(x, _gen())
    assert out.shape == x.shape
    for image in out[:, 0]:
        lit = (image == 1.0).nonzero()
        assert len(lit) == 1, "the lit pixel moves, it is neither lost nor duplicated"
        dy, dx = (lit[0] - 14).tolist()
        assert abs(dy) <= 4 and abs(dx) <= 4  # round(28 / 8) = 4
    assert len({tuple((img == 1.0).nonzero()[0].tolist()) for img in out[:, 0]}) > 10, "shifts differ per image"
    # The uncovered border is background, the rest of an all-lit image stays lit.
    shifted = translation(torch.ones(8, 1, 28, 28), _gen(1))
    assert set(shifted.unique().tolist()) <= {BACKGROUND, 1.0}


def test_translation_of_a_shift_is_a_shift_of_the_content():
    x = torch.randn(4, 1, 28, 28)
    out = translation(x, _gen(3))
    for src, dst in zip(x[:, 0], out[:, 0], strict=True):
        matches = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(
                dst[max(dy, 0) : 28 + min(dy, 0), max(dx, 0) : 28 + min(dx, 0)],
                src[max(-dy, 0) : 28 + min(-dy, 0), max(-dx, 0) : 28 + min(-dx, 0)],
            )
        ]
        assert len(matches) == 1


def test_cutout_blanks_one_square_of_half_the_size_at_most():
    x = torch.ones(200, 1, 28, 28)
    out = cutout(x, _gen())
    blanked = (out == BACKGROUND).sum(dim=(1, 2, 3))
    assert blanked.max() == 14 * 14 and blanked.min() > 0, "a square of 14 px, possibly cut by an edge"
    for image in out[:, 0]:
        rows, cols = (image == BACKGROUND).nonzero().unbind(1)
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert area == len(rows), "the blanked pixels form one rectangle"


def test_augmentation_is_differentiable_and_reproducible():
    x = torch.randn(8, 1, 28, 28, requires_grad=True)
    policy = parse_policy("color,translation,cutout")
    out = diff_augment(x, policy, _gen(5))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(out, diff_augment(x, policy, _gen(5)))
    assert not torch.equal(out, diff_augment(x, policy, _gen(6)))
    assert diff_augment(x, (), _gen()) is x


def test_r1_is_the_squared_gradient_norm_on_real_images():
    # D(x) = sum(w * x): its gradient is w for every image, so R1 = |w|^2.
    w = torch.randn(1, 1, 28, 28)
    real = torch.randn(5, 1, 28, 28, requires_grad=True)
    logits = (real * w).flatten(1).sum(dim=1)
    assert torch.allclose(r1_penalty(logits, real), w.pow(2).sum())
    # D(x) = sum(x^2) / 2: gradient x, R1 = mean |x|^2; differentiable again (for D's step).
    logits = 0.5 * real.pow(2).flatten(1).sum(dim=1)
    penalty = r1_penalty(logits, real)
    assert torch.allclose(penalty, real.pow(2).flatten(1).sum(dim=1).mean())
    penalty.backward()
    assert real.grad is not None


def test_mode_seeking_punishes_collapse():
    z_a, z_b = torch.randn(6, 8), torch.randn(6, 8)
    same = torch.zeros(6, 1, 28, 28)
    collapsed = mode_seeking(same, same, z_a, z_b)
    diverse = mode_seeking(torch.rand(6, 1, 28, 28), -torch.rand(6, 1, 28, 28), z_a, z_b)
    assert collapsed > 1000 * diverse, "identical images from different latents cost most"
    # The ratio: images twice as far apart for the same latents halve the term.
    a, b = torch.rand(6, 1, 28, 28), torch.rand(6, 1, 28, 28)
    assert torch.allclose(mode_seeking(a, b, z_a, z_b), 2 * mode_seeking(2 * a, 2 * b, z_a, z_b), rtol=1e-3)


def test_paired_labels_repeat_the_first_half(tiny_data, tmp_path):
    trainer = Trainer(tiny_options(tmp_path / "r", ms_weight=1.0))
    y = trainer._paired_labels(9)
    assert y.shape == (9,) and torch.equal(y[:4], y[4:8])


def test_learning_rates_decay_linearly_over_the_last_fraction(tiny_data, tmp_path):
    trainer = Trainer(tiny_options(tmp_path / "r", epochs=4, lr_decay=0.5, lr_g=1e-3, lr_d=2e-3))
    seen = []
    for step in (0, 10, 20, 30, 39, 40):
        trainer.step = step
        trainer._set_learning_rates(steps_per_epoch=10)
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))
    assert seen[0] == seen[1] == seen[2] == (1e-3, 2e-3), "constant over the first half"
    assert seen[3] == pytest.approx((5e-4, 1e-3))
    assert seen[4] == pytest.approx((5e-5, 1e-4))
    assert seen[5] == (0.0, 0.0)


@pytest.mark.parametrize(
    "overrides",
    [{"diffaugment": "translation,cutout,color"}, {"r1_gamma": 1.0}, {"ms_weight": 1.0}, {"lr_decay": 0.5}],
)
def test_each_measure_trains_and_resumes_exactly(tiny_data, tmp_path, overrides):
    Trainer(tiny_options(tmp_path / "full", epochs=2, **overrides)).train()
    # The same run killed after its first epoch (its state saved), then resumed.
    split = Trainer(tiny_options(tmp_path / "split", epochs=2, **overrides))
    first_epoch = split._train_epoch

    def killed_after_one(*args, **kwargs):
        first_epoch(*args, **kwargs)
        raise KeyboardInterrupt

    split._train_epoch = killed_after_one
    with pytest.raises(KeyboardInterrupt):
        split.train()
    Trainer.resume(tmp_path / "split").train()
    _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "split"))
    # The measure changes training, and the checkpoint records it.
    Trainer(tiny_options(tmp_path / "plain", epochs=2)).train()
    with pytest.raises(AssertionError):
        _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "plain"))
    facts = load_model(tmp_path / "full" / "generator").checkpoint["training"]
    assert all(facts[key] == value for key, value in overrides.items())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"diffaugment": "flip"}, "unknown augmentation"),
        ({"r1_gamma": -1.0}, "--r1-gamma"),
        ({"lr_decay": 2.0}, "--lr-decay"),
    ],
)
def test_bad_diversity_options_are_refused(tiny_data, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        Trainer(tiny_options(tmp_path / "r", **overrides))


def test_batch_size_and_learning_rates_fit_the_device():
    cpu = TrainOptions(out="x")
    fit_to_device(cpu, torch.device("cpu"))
    assert (cpu.batch_size, cpu.lr_g, cpu.lr_d) == (64, 2e-4, 2e-4)
    gpu = TrainOptions(out="x", lr_d=1e-4)
    fit_to_device(gpu, torch.device("cuda"))
    assert gpu.batch_size == 256 and gpu.lr_g == pytest.approx(4e-4) and gpu.lr_d == pytest.approx(2e-4)
    explicit = TrainOptions(out="x", batch_size=128)
    fit_to_device(explicit, torch.device("cuda"))
    assert (explicit.batch_size, explicit.lr_g) == (128, 2e-4), "an explicit batch size keeps the rates"


def test_an_automatic_batch_size_is_recorded_as_used(tiny_data, tmp_path):
    trainer = Trainer(tiny_options(tmp_path / "r", batch_size=None, limit=128, epochs=1))
    trainer.train()
    options = json.loads((tmp_path / "r" / "options.json").read_text())
    assert options["batch_size"] == 64 and options["lr_g"] == 2e-4
    resumed = Trainer.resume(tmp_path / "r", epochs=2)
    assert resumed.opts.batch_size == 64 and resumed.opts.lr_g == 2e-4


def test_init_starts_from_trained_checkpoints(tiny_data, tmp_path):
    Trainer(tiny_options(tmp_path / "a", epochs=1, aux_weight=0.5)).train()
    G = load_model(tmp_path / "a" / "generator")
    D = load_model(tmp_path / "a" / "discriminator")
    # Without the class head: D's other weights are the checkpoint's; G and its average start from G.
    fine = Trainer(tiny_options(tmp_path / "b", init=str(tmp_path / "a"), aux_weight=0.0))
    _assert_same(fine.G.state_dict(), G.state_dict())
    _assert_same(fine.G_ema.state_dict(), G.state_dict())
    own = fine.D.state_dict()
    assert not any(k.startswith("aux.") for k in own)
    _assert_same(own, {k: v for k, v in D.state_dict().items() if k in own})
    fine.train()
    assert load_model(tmp_path / "b" / "generator").checkpoint["training"]["init"] == str(tmp_path / "a")


def test_init_with_another_architecture_is_refused(tiny_data, tmp_path):
    Trainer(tiny_options(tmp_path / "a", epochs=1)).train()
    with pytest.raises(ValueError, match="channels 4 \\(options: 8\\)"):
        Trainer(tiny_options(tmp_path / "b", init=str(tmp_path / "a"), channels=8))
