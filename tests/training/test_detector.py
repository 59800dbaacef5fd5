"""The real/fake detector: network, augmentations, calibration, and the train-detector command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import (
    Detector,
    DetectorConfig,
    Discriminator,
    DiscriminatorConfig,
    build_model,
    load_model,
    save_model,
    to_float,
)
from training.calibration import binary_nll, calibrate, fit_temperature
from training.cli import main
from training.detector import (
    UNKNOWN,
    lr_schedule,
    mirror,
    withhold_labels,
)
from training.fakes import FakeMix
from training.metrics.detection import detection_figures_from_logits
from training.transforms import AugmentOptions, random_augment

# The network ------------------------------------------------------------------------------------


def test_label_is_optional_and_none_means_unknown():
    torch.manual_seed(0)
    det = Detector(DetectorConfig(channels=4)).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        none = det(x)
        unknown = det(x, torch.full((5,), UNKNOWN))
        labelled = det(x, torch.tensor([0, 3, 9, -1, 5]))
    assert none.shape == (5,)
    assert torch.equal(none, unknown)
    assert labelled[3] == none[3]  # a negative entry is "unknown" within a labelled batch
    with pytest.raises(ValueError, match="label ids must be < 10"):
        det(x, torch.tensor([0, 1, 2, 3, 10]))
    with pytest.raises(ValueError, match="shape"):
        det(torch.rand(2, 3, 28, 28))


def test_unconditional_detector_ignores_labels():
    det = Detector(DetectorConfig(num_classes=0, channels=4)).eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(det(x), det(x, torch.tensor([1, 2, 3])))
    assert not det.conditional and not hasattr(det, "embed")


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    det = Detector(DetectorConfig(channels=4))
    det.train()
    det(torch.rand(16, 1, 28, 28) * 2 - 1, torch.arange(16) % 10)  # non-trivial batch-norm statistics
    det.eval()
    save_model(det, tmp_path / "detector", metrics={"temperature": 1.7, "ece_before": 0.1, "ece_after": 0.01})
    back = load_model(tmp_path / "detector", expected=Detector)
    x, y = torch.rand(6, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, -1, 3, 4, 9])
    with torch.no_grad():
        assert torch.equal(det(x, y), back(x, y))
        assert torch.equal(det(x), back(x))
    assert back.config == DetectorConfig(channels=4)
    assert back.checkpoint["metrics"]["temperature"] == 1.7
    # The fixed high-pass kernel is a constant of the code, not a checkpoint tensor.
    assert "laplacian" not in back.state_dict()


def test_dropout_acts_while_training_only_and_old_configs_load_without_it():
    torch.manual_seed(0)
    plain = Detector(DetectorConfig(channels=4))
    dropped = Detector(DetectorConfig(channels=4, dropout=0.5))
    dropped.load_state_dict(plain.state_dict())
    x, y = torch.rand(6, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, -1, 3, 4, 9])
    with torch.no_grad():
        assert torch.equal(plain.eval()(x, y), dropped.eval()(x, y))  # judging: no dropout
        plain.train(), dropped.train()
        assert torch.equal(plain(x, y), plain(x, y))  # training without dropout is deterministic
        assert not torch.equal(dropped(x, y), plain(x, y))
    # A checkpoint written before the setting existed has no "dropout": it builds with none.
    assert build_model("Detector", {"num_classes": 10, "channels": 4, "high_pass": True}).config.dropout == 0.0
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout must be in"):
            Detector(DetectorConfig(channels=4, dropout=bad))


@pytest.mark.parametrize("num_classes", [10, 0])
def test_widened_detector_gives_the_same_logits_and_trains_its_new_channels(num_classes):
    torch.manual_seed(0)
    det = Detector(DetectorConfig(num_classes=num_classes, channels=4))
    det.train()
    det(torch.rand(16, 1, 28, 28) * 2 - 1)  # non-trivial batch-norm statistics
    det.eval()
    wide = det.widened(6).eval()
    assert wide.config == DetectorConfig(num_classes=num_classes, channels=6)
    x, y = torch.rand(8, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, -1, 3, 4, 9, 2, -1])
    with torch.no_grad():
        torch.testing.assert_close(wide(x, y), det(x, y), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(wide(x), det(x), rtol=1e-5, atol=1e-5)
    # The new channels are live: training moves their outgoing weights (zero at first) and their incoming ones.
    second = wide.features[1][0].weight  # (6, 6, 3, 3): out, in
    assert not second[:4, 4:].any()
    incoming = second[4:].clone()
    wide.train()
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    for _ in range(2):  # the first step moves the zero outgoing weights, the second the incoming ones through them
        loss = F.binary_cross_entropy_with_logits(wide(x, y), torch.tensor([1.0, 0] * 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert second[:4, 4:].abs().sum() > 0 and not torch.equal(second[4:], incoming)
    with pytest.raises(ValueError, match="cannot narrow a detector from width 4 to 3"):
        det.widened(3)


def test_warmup_raises_the_learning_rate_linearly_then_decays_it_to_zero():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = lr_schedule(opt, steps=10, warmup_steps=4)
    rates = []
    for _ in range(10):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    # From lr / 4 up to lr in four equal steps, then the cosine from lr down.
    assert rates[:5] == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert rates[4:] == sorted(rates[4:], reverse=True) and rates[-1] < 0.1
    plain = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert isinstance(lr_schedule(plain, steps=10, warmup_steps=0), torch.optim.lr_scheduler.CosineAnnealingLR)


def _synthetic(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable pairs: 'real' = soft blobs on black; 'fake' = the same with a faint period-2 checkerboard."""
    yy, xx = np.mgrid[:28, :28]  # (28, 28)
    cy, cx, r = (rng.uniform(lo, hi, (n, 1, 1)) for lo, hi in ((9, 19), (9, 19), (4, 8)))
    blobs = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))  # (n, 28, 28)
    checker = ((yy + xx) % 2) * 2 - 1  # +-1 at period 2, like a transposed convolution's overlap pattern
    real = blobs + rng.normal(0, 3, blobs.shape)
    fake = blobs + 12 * checker * (blobs > 20) + rng.normal(0, 3, blobs.shape)
    as_uint8 = lambda a: torch.from_numpy(np.clip(np.rint(a), 0, 255).astype(np.uint8))  # noqa: E731
    return as_uint8(real), as_uint8(fake)


def test_tiny_detector_separates_separable_synthetic_data(one_thread):  # tiny convolutions gain nothing from threads
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    det = Detector(DetectorConfig(num_classes=0, channels=4))
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    targets = torch.cat([torch.ones(16), torch.zeros(16)])
    shifts_only = AugmentOptions(p=0.5, chain_p=0.0, kinds=("shift",))  # shifts on both: position is no cue
    for _ in range(40):
        real, fake = _synthetic(16, rng)
        images = torch.cat([random_augment(real, rng, shifts_only), random_augment(fake, rng, shifts_only)])
        loss = F.binary_cross_entropy_with_logits(det(to_float(images).unsqueeze(1)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    det.eval()
    real, fake = _synthetic(200, np.random.default_rng(123))  # held out
    with torch.no_grad():
        logits = det(to_float(torch.cat([real, fake])).unsqueeze(1))
    figures = detection_figures_from_logits(logits.numpy(), np.r_[np.ones(200), np.zeros(200)])
    assert figures.accuracy >= 0.97, figures
    assert figures.roc_auc >= 0.995, figures


# Augmentations and labels -----------------------------------------------------------------------


def test_jpeg_quality_option_reaches_the_runs_record(tiny_data, tmp_path, generators):
    run = tmp_path / "r"
    args = ["train-detector", "--out", str(run), "--generator", str(generators[0]), *TINY]
    assert main([*args, "--jpeg-quality", "55", "90"]) == 0
    assert json.loads((run / "options.json").read_text())["augment"]["jpeg_quality"] == [55, 90]
    config = json.loads((run / "detector" / "config.json").read_text())
    assert config["training"]["augment"]["jpeg_quality"] == [55, 90]


def test_mirror_flips_the_chosen_images_left_to_right_and_p0_draws_nothing():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (400, 28, 28), dtype=np.uint8))
    all_flipped = mirror(images, 1.0, np.random.default_rng(1))
    assert torch.equal(all_flipped[:, :, 0], images[:, :, -1]) and torch.equal(all_flipped.flip(-1), images)
    some = mirror(images, 0.25, np.random.default_rng(1))
    flipped = (some != images).flatten(1).any(1)
    assert 0.18 < float(flipped.float().mean()) < 0.32
    assert torch.equal(some[flipped], images[flipped].flip(-1)) and torch.equal(some[~flipped], images[~flipped])
    assert torch.equal(some, mirror(images, 0.25, np.random.default_rng(1)))  # seeded
    # p = 0 leaves the images and the random stream alone: runs without it draw what they drew before.
    rng, untouched = np.random.default_rng(2), np.random.default_rng(2)
    assert torch.equal(mirror(images, 0.0, rng), images)
    assert rng.random() == untouched.random()


def test_withheld_labels_are_as_frequent_among_reals_as_fakes():
    rng = np.random.default_rng(0)
    real_y = torch.arange(1000) % 10
    # Half the fakes come from an unconditional generator: they never carry a label.
    fake_y = torch.cat([torch.arange(500) % 10, torch.full((500,), UNKNOWN)])
    r, f = withhold_labels(real_y, fake_y, 0.2, rng)
    fake_rate, real_rate = (f == UNKNOWN).float().mean(), (r == UNKNOWN).float().mean()
    assert abs(float(fake_rate) - 0.6) < 0.05
    assert abs(float(real_rate - fake_rate)) <= 1e-3
    kept = r != UNKNOWN
    assert torch.equal(r[kept], real_y[kept])  # labels are withheld, never changed


# Calibration ------------------------------------------------------------------------------------


def _calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and targets drawn as Bernoulli(sigmoid(z)): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, n)
    return z, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)


def test_temperature_scaling_repairs_an_overconfident_detector():
    z, t = _calibrated_sample(20000, 0)
    overconfident = 4.0 * z  # a detector that is sure of everything
    result = calibrate(overconfident, t)
    assert result.temperature == pytest.approx(4.0, rel=0.1)
    assert result.ece_before > 0.1
    assert result.ece_after < 0.02 and result.ece_after < result.ece_before / 5
    assert result.nll_after < result.nll_before
    assert set(result.to_metrics()) >= {"temperature", "ece_before", "ece_after"}


def test_temperature_scaling_repairs_an_underconfident_detector_and_leaves_a_good_one():
    z, t = _calibrated_sample(20000, 1)
    assert fit_temperature(z / 3.0, t) == pytest.approx(1 / 3.0, rel=0.1)
    assert fit_temperature(z, t) == pytest.approx(1.0, rel=0.1)


def test_the_prior_keeps_a_perfectly_separated_validation_set_from_driving_t_to_zero():
    logits = np.r_[np.linspace(1, 5, 50), -np.linspace(1, 5, 50)]
    targets = np.r_[np.ones(50), np.zeros(50)]
    # Without the prior the NLL keeps falling as T -> 0, and only the search bound stops it.
    assert fit_temperature(logits, targets, prior_scale=0) == pytest.approx(0.01, rel=0.01)
    temperature = fit_temperature(logits, targets)
    assert 0.05 < temperature < 1.0  # sharper, as the data ask, but not "100 % sure"
    assert binary_nll(logits / temperature, targets) < binary_nll(logits, targets)
    with pytest.raises(ValueError, match="targets"):
        fit_temperature(logits, np.full(100, 2.0))


# The train-detector command ---------------------------------------------------------------------

TINY = ["--steps", "4", "--batch-size", "16", "--channels", "4", "--val-size", "40", "--test-samples", "24"]
TINY += ["--eval-every", "2", "--log-every", "2", "--device", "cpu", "--no-progress"]
TINY_ANY_WIDTH = [a for i, a in enumerate(TINY) if "--channels" not in (a, TINY[i - 1])]  # for --init runs


def test_train_detector_smoke_run_exports_a_calibrated_checkpoint(tiny_data, tmp_path, generators):
    conditional, unconditional = generators
    run = tmp_path / "run"
    args = ["train-detector", "--out", str(run), "--generator", str(conditional)]
    assert main([*args, "--holdout-generator", str(unconditional), *TINY]) == 0

    det = load_model(run / "detector", expected=Detector)
    assert det.conditional and det.config.channels == 4
    config = json.loads((run / "detector" / "config.json").read_text())
    metrics = config["metrics"]
    assert metrics["temperature"] > 0
    for key in ("ece_before", "ece_after"):
        assert 0.0 <= metrics[key] <= 0.5
    assert metrics["calibration_samples"] == 80  # 40 held-out reals and 40 fakes
    seen, unseen = f"seen:{conditional}", f"unseen:{unconditional}"
    assert set(metrics["test"]) == {seen, unseen}
    assert set(metrics["test"][seen]) == {"clean", "jpeg75"}
    assert set(metrics["test"][seen]["clean"]) == {"labelled", "unlabelled"}
    assert set(metrics["test"][unseen]["jpeg75"]) == {"unlabelled"}  # an unconditional generator gives no labels
    figures = metrics["test"][seen]["clean"]["labelled"]
    assert figures["n_real"] == figures["n_fake"] == 24 and 0 <= figures["accuracy"] <= 1
    assert config["training"]["generators"][0]["path"] == str(conditional)
    assert config["training"]["val_images"] == 40 and config["training"]["train_images"] == 160

    assert json.loads((run / "options.json").read_text())["generators"] == [str(conditional)]
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [2, 4]
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4] and metrics["best_step"] in (2, 4)
    with torch.no_grad():
        assert det(torch.zeros(2, 1, 28, 28), None).shape == (2,)


def test_unconditional_generators_give_a_label_free_detector(tiny_data, tmp_path, generators):
    run = tmp_path / "run"
    assert main(["train-detector", "--out", str(run), "--generator", str(generators[1]), *TINY]) == 0
    assert not load_model(run / "detector", expected=Detector).conditional


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--val-size", "195"], "cannot hold --val-size"),
        (["--batch-size", "7"], "even number"),
        (["--augment-p", "1.5"], "--augment-p is a probability and must be in [0, 1] (got 1.5)"),
        (["--chain-p", "-0.1"], "--chain-p is a probability and must be in [0, 1] (got -0.1)"),
        (["--blur-sigma", "0", "1"], "--blur-sigma LO HI must satisfy 0 < LO <= HI (got 0.0 1.0)"),
        (["--jpeg-quality", "80", "60"], "--jpeg-quality LO HI must satisfy 1 <= LO <= HI <= 100 (got 80 60)"),
        (["--jpeg-quality", "0", "90"], "(got 0 90)"),
        (["--warmup-steps", "4"], "--warmup-steps must be >= 0 and fewer than --steps"),
    ],
)
def test_bad_options_exit_2_with_a_message(tiny_data, tmp_path, generators, caplog, extra, message):
    args = ["train-detector", "--out", str(tmp_path / "r"), "--generator", str(generators[0]), *TINY, *extra]
    assert main(args) == 2
    assert message in caplog.text


def test_a_generator_that_is_not_one_exits_2(tiny_data, tmp_path, caplog):
    not_a_generator = save_model(Discriminator(DiscriminatorConfig(channels=4)), tmp_path / "d")
    assert main(["train-detector", "--out", str(tmp_path / "r"), "--generator", str(not_a_generator), *TINY]) == 2
    assert "expected a Generator" in caplog.text
    assert main(["train-detector", "--out", str(tmp_path / "r"), "--generator", str(tmp_path / "nowhere"), *TINY]) == 2
    assert "not found" in caplog.text


def test_an_existing_run_is_not_overwritten(tiny_data, tmp_path, generators, caplog):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "options.json").write_text("{}")
    assert main(["train-detector", "--out", str(tmp_path / "r"), "--generator", str(generators[0]), *TINY]) == 2
    assert "already holds a run" in caplog.text


def test_init_fine_tunes_an_existing_detector_and_records_where_it_started(tiny_data, tmp_path, generators):
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["train-detector", "--generator", str(generators[0])]
    assert main([*base, "--out", str(first), *TINY]) == 0
    start = load_model(first / "detector", expected=Detector)
    # No --channels: the starting detector's width is kept.
    assert main([*base, "--out", str(second), "--init", str(first / "detector"), *TINY_ANY_WIDTH]) == 0

    tuned = load_model(second / "detector", expected=Detector)
    assert tuned.config.channels == 4
    config = json.loads((second / "detector" / "config.json").read_text())
    init = config["training"]["init"]
    assert init["path"] == str(first / "detector") and init["steps"] == 4 and init["train_images"] == 160
    assert json.loads((second / "options.json").read_text())["init"] == str(first / "detector")
    assert json.loads((first / "detector" / "config.json").read_text())["training"]["init"] is None
    # It trained from the starting weights: four more steps moved them, but not far.
    a, b = start.state_dict(), tuned.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(1)  # not the first run's initial weights (its --seed 0)
    c = Detector(DetectorConfig(channels=4)).state_dict()

    def distance(p: dict[str, torch.Tensor]) -> float:  # over the weights, not the batch-norm statistics
        return sum(float((p[k] - a[k]).norm()) for k, _ in start.named_parameters())

    assert distance(b) < distance(c) / 10


def test_init_with_a_larger_width_widens_the_detector_and_records_its_width(tiny_data, tmp_path, generators):
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["train-detector", "--generator", str(generators[0])]
    assert main([*base, "--out", str(first), *TINY]) == 0
    args = [*base, "--out", str(second), "--init", str(first / "detector"), *TINY_ANY_WIDTH, "--channels", "6"]
    assert main([*args, "--warmup-steps", "2"]) == 0
    wide = load_model(second / "detector", expected=Detector)
    assert wide.config.channels == 6
    training = json.loads((second / "detector" / "config.json").read_text())["training"]
    assert training["init"]["channels"] == 4 and training["warmup_steps"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--channels", "3"], "has width 4, more than --channels 3"),
        (["--channels", "4", "--val-size", "30"], "another validation split (val_images 40 (here 30))"),
        (["--channels", "4", "--seed", "1"], "another validation split (seed 0 (here 1))"),
        (["--channels", "4", "--limit", "150"], "trained on 160 images, this run on 110"),
    ],
)
def test_init_refuses_a_narrower_width_or_another_validation_split(
    tiny_data, tmp_path, generators, caplog, extra, message
):
    first = tmp_path / "first"
    assert main(["train-detector", "--generator", str(generators[0]), "--out", str(first), *TINY]) == 0
    args = ["train-detector", "--generator", str(generators[0]), "--out", str(tmp_path / "r")]
    assert main([*args, "--init", str(first / "detector"), *TINY_ANY_WIDTH, *extra]) == 2
    assert message in caplog.text
    assert not (tmp_path / "r").exists()  # refused before the run directory is made: --out can be used again


def test_init_refuses_a_label_free_detector_for_conditional_generators(tiny_data, tmp_path, generators, caplog):
    free = tmp_path / "free"
    assert main(["train-detector", "--generator", str(generators[1]), "--out", str(free), *TINY]) == 0
    args = ["train-detector", "--generator", str(generators[0]), "--out", str(tmp_path / "r"), *TINY]
    assert main([*args, "--init", str(free / "detector")]) == 2
    assert "takes no labels" in caplog.text


def test_ema_decay_exports_the_moving_average_of_the_trained_weights(tiny_data, tmp_path, generators):
    base = ["train-detector", "--generator", str(generators[0]), *TINY, "--eval-every", "2"]

    def weights(name: str, *extra: str) -> dict[str, torch.Tensor]:
        assert main([*base, "--out", str(tmp_path / name), *extra]) == 0
        assert json.loads((tmp_path / name / "detector" / "config.json").read_text())["training"]["ema_decay"] == (
            float(extra[-1]) if "--ema-decay" in extra else 0.0
        )
        return load_model(tmp_path / name / "detector", expected=Detector).state_dict()

    # The first step does not depend on the run's length (the cosine schedule starts at --lr), so a one-step run
    # gives the weights after step 1 of a two-step one; with one validation, each plain run exports its last weights.
    first, second = weights("one", "--steps", "1"), weights("two", "--steps", "2")
    averaged = weights("ema", "--steps", "2", "--ema-decay", "0.25")
    assert any(not torch.equal(first[k], second[k]) for k in first)
    for key, value in averaged.items():
        if value.is_floating_point():  # parameters and batch-norm statistics alike
            torch.testing.assert_close(value, 0.25 * first[key] + 0.75 * second[key])


def test_ema_decay_outside_0_1_exits_2(tiny_data, tmp_path, generators, caplog):
    args = ["train-detector", "--out", str(tmp_path / "r"), "--generator", str(generators[0]), *TINY]
    assert main([*args, "--ema-decay", "1"]) == 2
    assert "--ema-decay must be in [0, 1)" in caplog.text


def test_stream_seed_draws_other_batches_from_the_same_split(tiny_data, tmp_path, generators):
    first = tmp_path / "first"
    base = ["train-detector", "--generator", str(generators[0])]
    assert main([*base, "--out", str(first), *TINY]) == 0

    def continuation(name: str, *extra: str) -> tuple[dict[str, torch.Tensor], dict]:
        args = [*base, "--out", str(tmp_path / name), "--init", str(first / "detector"), *TINY_ANY_WIDTH, *extra]
        assert main(args) == 0
        config = json.loads((tmp_path / name / "detector" / "config.json").read_text())
        return load_model(tmp_path / name / "detector", expected=Detector).state_dict(), config

    default, default_config = continuation("default")
    same, _ = continuation("same", "--stream-seed", "0")
    other, other_config = continuation("other", "--stream-seed", "1")
    assert default_config["training"]["stream_seed"] == 0 and other_config["training"]["stream_seed"] == 1
    assert all(torch.equal(default[k], same[k]) for k in default)  # the default stream is --seed's
    assert any(not torch.equal(default[k], other[k]) for k in default)  # another stream: other batches
    # The same split (the --init check compares seed, dataset and validation size).
    for key in ("seed", "val_images", "train_images"):
        assert other_config["training"][key] == default_config["training"][key]


def test_dropout_is_set_on_a_fine_tuned_detector_and_recorded(tiny_data, tmp_path, generators, caplog):
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["train-detector", "--generator", str(generators[0])]
    assert main([*base, "--out", str(first), *TINY]) == 0
    assert (
        main([*base, "--out", str(second), "--init", str(first / "detector"), *TINY_ANY_WIDTH, "--dropout", "0.5"]) == 0
    )
    for run, p in ((first, 0.0), (second, 0.5)):
        config = json.loads((run / "detector" / "config.json").read_text())
        assert config["config"]["dropout"] == config["training"]["dropout"] == p
    assert main([*base, "--out", str(tmp_path / "bad"), *TINY, "--dropout", "1"]) == 2
    assert "--dropout must be in [0, 1)" in caplog.text


@pytest.mark.parametrize("flag", ["--mirror-real-p", "--mirror-p"])
def test_mirroring_is_recorded_and_checked(tiny_data, tmp_path, generators, caplog, flag):
    key = flag.removeprefix("--").replace("-", "_")
    base = ["train-detector", "--generator", str(generators[0]), *TINY]
    plain, mirrored = tmp_path / "plain", tmp_path / "mirrored"
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--out", str(mirrored), flag, "0.5"]) == 0
    configs = [json.loads((run / "detector" / "config.json").read_text()) for run in (plain, mirrored)]
    assert [c["training"][key] for c in configs] == [0.0, 0.5]
    weights = [load_model(run / "detector", expected=Detector).state_dict() for run in (plain, mirrored)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # other real images: other steps
    assert main([*base, "--out", str(tmp_path / "bad"), flag, "1.5"]) == 2
    assert f"{flag} must be in [0, 1]" in caplog.text


def test_mirror_p_mirrors_fakes_as_often_as_reals(tiny_data, tmp_path, generators, monkeypatch):
    import training.detector as trainer

    calls: list[tuple[torch.Tensor, float]] = []

    def spy(images, p, rng):
        calls.append((images.clone(), p))
        return mirror(images, p, rng)

    monkeypatch.setattr(trainer, "mirror", spy)
    args = ["train-detector", "--generator", str(generators[0]), *TINY, "--steps", "2", "--mirror-p", "1"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    mirrored = [images for images, p in calls if p == 1.0]
    assert len(mirrored) == 4  # every step: the real half and the fake half
    assert all(len(images) == len(mirrored[0]) for images in mirrored)


def test_a_generator_given_twice_draws_two_shares(generators):
    conditional, unconditional = (str(g) for g in generators)
    source = FakeMix([conditional, unconditional, conditional], torch.device("cpu"))
    assert source.paths == [conditional, unconditional] and len(source.sources) == 2
    assert source.counts(64) == [43, 21] and source.counts(3) == [2, 1] and source.counts(1) == [1, 0]
    assert [row["share"] for row in source.describe()] == pytest.approx([2 / 3, 1 / 3])
    images, labels = source.sample(30, torch.Generator().manual_seed(0))
    assert images.shape == (30, 28, 28) and images.dtype == torch.uint8
    assert int((labels == UNKNOWN).sum()) == 10  # the unconditional generator's share
    # Given once each, the shares are equal, the first ones taking the remainder.
    assert FakeMix([conditional, unconditional], torch.device("cpu")).counts(5) == [3, 2]
