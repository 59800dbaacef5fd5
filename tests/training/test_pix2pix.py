"""Sketch to garment: the edge operators and augmentations, the metrics, the training run and its exact
resume, the evaluation command, the zoo family and the rebuild recipe, on tiny IDX data and tiny networks."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from models import WEIGHTS_DIR, PatchDiscriminator, Pix2PixGenerator, load_model, quantize, read_config, to_float
from training.cli import build_parser, main
from training.commands.rebuild import PIX2PIX_EPOCHS, SMOKE, plan, recipe, shipped, with_options
from training.data import load_split
from training.metrics.ssim import ssim
from training.pix2pix import GRID_ROWS, Pix2PixOptions, Pix2PixTrainer, l1_distance, translate
from training.sketch import AUGMENT, HELD_OUT, OPERATORS, Augment, augmented_sketch, sketch, sobel_magnitude
from training.zoo import FAMILIES, ZooOptions, sample_bank, train_family

# The sketch operators --------------------------------------------------------------------------


def square(size: int = 28, lo: int = 8, hi: int = 20) -> torch.Tensor:
    """(1, 1, 28, 28) in -1..1: a white filled square, rows and columns lo..hi-1, on black."""
    x = -torch.ones(1, 1, size, size)
    x[..., lo:hi, lo:hi] = 1.0
    return x


def test_sobel_draws_a_filled_squares_outline_as_light_strokes_on_dark() -> None:
    s = sketch(square(), "sobel")[0, 0]  # (28, 28)
    assert set(s.unique().tolist()) == {-1.0, 1.0}
    strokes = s > 0
    # The pixels either side of each side of the square, and nothing else: not its inside, not the background.
    expected = torch.zeros(28, 28, dtype=torch.bool)
    expected[7:21, 7:21] = True
    expected[9:19, 9:19] = False
    assert torch.equal(strokes, expected)
    # A black-to-white step has magnitude 1 either side of it (the threshold is a fraction of that).
    assert sobel_magnitude(square())[0, 0, 12, 7:9].tolist() == [1.0, 1.0]


def test_held_out_operators_draw_one_pixel_outlines() -> None:
    # Canny-like: thinned to one pixel per side, so a column through the square crosses two strokes.
    canny = sketch(square(), "canny")[0, 0] > 0
    assert canny[:, 14].sum() == 2 and canny[14, :].sum() == 2
    assert not canny[10:18, 10:18].any() and not canny[:5].any()
    # Contour: the silhouette's inner boundary, the 44 pixels of the square's border ring.
    contour = sketch(square(), "contour")[0, 0] > 0
    ring = torch.zeros(28, 28, dtype=torch.bool)
    ring[8:20, 8:20] = True
    ring[9:19, 9:19] = False
    assert torch.equal(contour, ring) and contour.sum() == 44


@pytest.mark.parametrize("operator", list(OPERATORS))
def test_a_blank_image_has_no_strokes_and_batches_do_not_mix(operator) -> None:
    assert (sketch(-torch.ones(2, 1, 28, 28), operator) == -1).all()
    batch = torch.cat([square(), -torch.ones(1, 1, 28, 28), square(lo=3, hi=10)])
    alone = torch.cat([sketch(batch[i : i + 1], operator) for i in range(3)])
    assert torch.equal(sketch(batch, operator), alone)


def test_an_unknown_operator_is_named() -> None:
    with pytest.raises(ValueError, match="unknown sketch operator 'sharpie'; expected one of sobel, canny, contour"):
        sketch(square(), "sharpie")
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, H, W\)"):
        sketch(torch.zeros(28, 28))


def test_augmentations_are_deterministic_per_seed_and_vary_between_images() -> None:
    images = torch.cat([square(lo=4 + k, hi=18 + k) for k in range(6)])

    def draw(seed: int) -> torch.Tensor:
        return augmented_sketch(images, torch.Generator().manual_seed(seed))

    first = draw(0)
    assert torch.equal(first, draw(0)) and not torch.equal(first, draw(1))
    assert first.shape == images.shape and first.min() >= -1 and first.max() <= 1
    assert (first > 0).any() and (first == -1).any()
    # Soft (anti-aliased) strokes on some images, +1/-1 only on others.
    binary = [set(s.unique().tolist()) <= {-1.0, 1.0} for seed in range(4) for s in draw(seed)]
    assert any(binary) and not all(binary)


def test_augmentations_at_zero_strength_are_the_clean_operator() -> None:
    none = Augment(threshold=(0.25, 0.25), width_p=(0, 1, 0, 0), break_p=0.0, jitter_px=0.0, binary_p=1.0)
    images = torch.cat([square(), square(lo=2, hi=26)])
    assert torch.equal(augmented_sketch(images, torch.Generator().manual_seed(0), none), sketch(images))
    # Wider strokes only ever add stroke pixels; the default ranges include every kind.
    wide = Augment(threshold=(0.25, 0.25), width_p=(0, 0, 0, 1), break_p=0.0, jitter_px=0.0, binary_p=1.0)
    thick = augmented_sketch(images, torch.Generator().manual_seed(0), wide) > 0
    assert (thick >= (sketch(images) > 0)).all() and thick.sum() > (sketch(images) > 0).sum()
    assert min(AUGMENT.width_p) >= 0 and AUGMENT.break_p > 0 and AUGMENT.jitter_px > 0


# The metrics -------------------------------------------------------------------------------------


def test_ssim_is_one_for_identical_images_and_the_closed_form_for_constants() -> None:
    x = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64))
    # Two flat images: only the luminance term is left, (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 0.2, 0.7, (0.01 * 1.0) ** 2
    flat = ssim(torch.full((1, 28, 28), a, dtype=torch.float64), torch.full((1, 28, 28), b, dtype=torch.float64))
    assert flat.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    noisy = (x + 0.3 * torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(x, noisy) < 1).all() and torch.allclose(ssim(x, noisy), ssim(noisy, x))
    assert (ssim(x, 1 - x) < 0).all()  # the negative is anti-correlated
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(x, x[:2])


def test_l1_is_the_mean_absolute_difference_on_0_to_1() -> None:
    black = torch.zeros(2, 28, 28, dtype=torch.uint8)
    assert l1_distance(black, black + 255).tolist() == [1.0, 1.0]
    assert l1_distance(black, black + 51).tolist() == pytest.approx([0.2, 0.2])
    half = black.clone()
    half[:, :14] = 255
    assert l1_distance(black, half).tolist() == [0.5, 0.5]


# The training run --------------------------------------------------------------------------------


def tiny_options(out, **overrides) -> Pix2PixOptions:
    base = dict(
        out=str(out),
        epochs=2,
        batch_size=16,
        channels=8,
        d_channels=8,
        limit=64,
        eval_images=20,
        log_every=2,
        progress=False,
        device="cpu",
    )
    return Pix2PixOptions(**{**base, **overrides})


def test_a_run_writes_every_artifact(tiny_data, tmp_path, one_thread) -> None:
    run = tmp_path / "run"
    record = Pix2PixTrainer(tiny_options(run, epochs=1)).train()
    assert json.loads((run / "options.json").read_text())["l1_weight"] == 10.0
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 1 and stats[0] == record and record["step"] == 64 // 16
    assert {"loss_d", "loss_g", "l1", "images_per_s", "val_l1", "val_ssim", "val_accuracy"} <= record.keys()
    assert 0 <= record["val_accuracy"] <= 1 and all(math.isfinite(v) for v in record.values())
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [row["step"] for row in steps] == [2, 4]
    with Image.open(run / "samples" / "epoch_001.png") as grid:
        assert grid.height > len(GRID_ROWS) * 28 * 2 and grid.width > 10 * 28 * 2  # rows x one column per class
    with Image.open(run / "progress.gif") as gif:
        assert gif.format == "GIF"
    assert (run / "losses.png").is_file() and list((run / "tb").glob("events.out.tfevents.*"))
    G = load_model(run / "pix2pix", expected=Pix2PixGenerator)
    load_model(run / "pix2pix-discriminator", expected=PatchDiscriminator)
    facts = G.checkpoint["training"]
    assert (facts["family"], facts["epochs"], facts["steps"], facts["sketch_operator"]) == ("pix2pix", 1, 4, "sobel")
    assert G.checkpoint["metrics"]["val_l1"] == record["val_l1"]


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(tiny_data, tmp_path, one_thread) -> None:
    whole = Pix2PixTrainer(tiny_options(tmp_path / "whole"))
    whole.train()
    Pix2PixTrainer(tiny_options(tmp_path / "split", epochs=1)).train()
    # A run killed part-way through epoch 2 left a log line beyond the resume point.
    with open(tmp_path / "split" / "steps.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "loss_d": 0.0}) + "\n")
    resumed = Pix2PixTrainer.resume(tmp_path / "split", epochs=2)
    resumed.train()
    for a, b in ((whole.pair.G, resumed.pair.G), (whole.pair.D, resumed.pair.D)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    for name in ("stats.jsonl", "steps.jsonl"):
        assert (tmp_path / "whole" / name).read_text().count("\n") == (tmp_path / "split" / name).read_text().count(
            "\n"
        )
    assert json.loads((tmp_path / "split" / "options.json").read_text())["epochs"] == 2


def test_bad_options_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        Pix2PixTrainer(tiny_options(tmp_path, loss="wgan"))
    with pytest.raises(ValueError, match="--l1-weight must be >= 0"):
        Pix2PixTrainer(tiny_options(tmp_path, l1_weight=-1))
    with pytest.raises(FileNotFoundError, match=r"options\.json: missing"):
        Pix2PixTrainer.resume(tmp_path / "nothing")


def test_the_commands_train_resume_and_evaluate(tiny_data, tmp_path, one_thread, capsys) -> None:
    run = tmp_path / "run"
    tiny = ["--batch-size", "16", "--channels", "8", "--d-channels", "8", "--limit", "32", "--no-progress"]
    assert main(["train-pix2pix", "--out", str(run), "--epochs", "1", "--eval-every", "0", *tiny]) == 0
    assert main(["train-pix2pix", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert read_config(run / "pix2pix")["training"]["epochs"] == 2

    report_path = tmp_path / "report.json"
    argv = ["evaluate-pix2pix", "--model", str(run / "pix2pix"), "--out", str(report_path), "--limit", "20"]
    assert main([*argv, "--record"]) == 0
    report = json.loads(report_path.read_text())
    assert list(report["operators"]) == ["sobel", *HELD_OUT] and report["test_images"] == 20
    sobel = report["operators"]["sobel"]
    assert sobel["seen_in_training"] and not report["operators"]["canny"]["seen_in_training"]
    assert 0 <= sobel["l1"] <= 1 and -1 <= sobel["ssim"] <= 1 and sobel["fid"] >= 0
    assert sum(sobel["accuracy"]["counts"].values()) == 20
    markdown = report_path.with_suffix(".md").read_text()
    assert "| canny | no |" in markdown and "## Classifier accuracy per class" in markdown
    recorded = read_config(run / "pix2pix")["metrics"]["evaluation"]
    assert recorded["canny"]["accuracy"] == report["operators"]["canny"]["accuracy"]["overall"]

    # The figures are those of the outputs as served: the quantized translations of the test sketches.
    G = load_model(run / "pix2pix")
    test = load_split("test", limit=20)
    sketches, outputs = translate(G, test.images, "contour")
    with torch.no_grad():
        expected = quantize(G(sketch(to_float(test.images).unsqueeze(1), "contour"))).squeeze(1)
    assert torch.equal(outputs, expected) and sketches.dtype == torch.uint8
    assert l1_distance(outputs, test.images).mean().item() == pytest.approx(report["operators"]["contour"]["l1"])


# The shipped translator on hand-drawn outlines --------------------------------------------------

# Outlines as a person draws them, as polylines in 28 x 28 coordinates: class id -> lines.
HAND_DRAWN = {
    0: [
        [
            (9, 4),
            (4, 8),
            (6, 12),
            (9, 10),
            (9, 25),
            (19, 25),
            (19, 10),
            (22, 12),
            (24, 8),
            (19, 4),
            (16, 6),
            (12, 6),
            (9, 4),
        ]
    ],
    1: [[(9, 2), (19, 2), (21, 26), (16, 26), (14, 9), (12, 26), (7, 26), (9, 2)]],
    3: [[(11, 2), (17, 2), (18, 9), (22, 26), (6, 26), (10, 9), (11, 2)]],
    8: [[(4, 10), (24, 10), (24, 25), (4, 25), (4, 10)], [(9, 10), (10, 4), (18, 4), (19, 10)]],
}


def hand_drawn(lines: list[list[tuple[int, int]]], width_px: float, scale: int = 10) -> torch.Tensor:
    """uint8 (28, 28): the lines drawn with a round brush of ``width_px`` image pixels on a canvas ``scale``
    times larger, downscaled as a drawing page would downscale it (anti-aliased)."""
    from PIL import ImageDraw

    canvas = Image.new("L", (28 * scale, 28 * scale), 0)
    draw = ImageDraw.Draw(canvas)
    for line in lines:
        draw.line([(x * scale, y * scale) for x, y in line], fill=255, width=round(width_px * scale), joint="curve")
    return torch.from_numpy(np.array(canvas.resize((28, 28), Image.LANCZOS)))


@pytest.mark.parametrize("width_px", [0.8, 1.6, 2.4])
def test_the_shipped_translator_turns_hand_drawn_outlines_into_their_garments(width_px) -> None:
    G = load_model(WEIGHTS_DIR / "pix2pix", expected=Pix2PixGenerator)
    classifier = load_model(WEIGHTS_DIR / "classifier")
    sketches = torch.stack([hand_drawn(lines, width_px) for lines in HAND_DRAWN.values()])  # (4, 28, 28) uint8
    with torch.no_grad():
        outputs = quantize(G(to_float(sketches).unsqueeze(1)))  # (4, 1, 28, 28) uint8, as served
        predicted = classifier(to_float(outputs)).argmax(dim=1)
    assert predicted.tolist() == list(HAND_DRAWN)


# The zoo family and the rebuild recipe -----------------------------------------------------------


def test_the_zoo_family_trains_and_samples_translations_of_real_images(tiny_data, tmp_path, one_thread) -> None:
    family = FAMILIES["pix2pix"]
    assert family.uses_reals and family.model_class is Pix2PixGenerator
    opts = ZooOptions(family="pix2pix", out=str(tmp_path / "zoo"), steps=2, batch_size=16, device="cpu", progress=False)
    model_dir = train_family("pix2pix", ZooOptions(**{**vars(opts), "arch": {"channels": 8}}))
    assert json.loads((tmp_path / "zoo" / "steps.jsonl").read_text().splitlines()[-1])["step"] == 2
    images, labels, meta = sample_bank(model_dir, 20, seed=3, split="test")
    assert images.dtype == torch.uint8 and images.shape == (20, 28, 28)
    assert torch.bincount(labels, minlength=10).tolist() == [2] * 10 and meta["family"] == "pix2pix"
    test = load_split("test")
    sources = torch.tensor(meta["source_index"])
    assert torch.equal(test.labels[sources], labels)  # each keeps its source image's label
    with torch.no_grad():
        expected = quantize(load_model(model_dir)(sketch(to_float(test.images[sources]).unsqueeze(1)))).squeeze(1)
    assert torch.equal(images, expected)
    assert torch.equal(sample_bank(model_dir, 20, seed=3, split="test")[0], images)


def test_the_rebuild_recipe_trains_pix2pix_and_all_includes_it() -> None:
    (step,) = recipe("pix2pix", "/rebuild")
    args = build_parser().parse_args(list(step.argv))
    assert step.product == shipped("pix2pix", "/rebuild")["pix2pix"] and step.epochs == args.epochs == PIX2PIX_EPOCHS
    assert (args.seed, args.threads, args.limit, args.no_augment) == (0, 1, None, False)
    everything = recipe("all", "/rebuild")
    assert step in everything and everything.index(step) < [s.command for s in everything].index("train-detector")
    shipped_dir = WEIGHTS_DIR / "pix2pix"
    if (shipped_dir / "config.json").exists():  # the recipe is what the shipped checkpoint records
        config = read_config(shipped_dir)
        facts = config["training"]
        for key in ("epochs", "batch_size", "l1_weight", "loss", "lr_g", "lr_d", "seed", "augment"):
            value = (not args.no_augment) if key == "augment" else getattr(args, key)
            assert value == facts[key], key
        assert (args.channels, args.dropout) == (config["config"]["channels"], config["config"]["dropout"])
        assert facts["train_images"] == "all" and facts["threads"] == args.threads


def test_rebuild_resumes_a_stopped_pix2pix_run_then_has_nothing_left_to_do(tiny_data, tmp_path, one_thread) -> None:
    (step,) = recipe("pix2pix", tmp_path)
    words = list(with_options(step.argv, SMOKE["train-pix2pix"]))
    words[words.index("--epochs") + 1] = "1"
    assert main([*words, "--no-progress"]) == 0
    args = argparse.Namespace(smoke=True, data_dir=None, device=None, no_progress=True)
    resume = ("train-pix2pix", "--resume", str(step.run_dir), "--epochs", str(PIX2PIX_EPOCHS), "--no-progress")
    assert plan(step, args) == resume
    assert main(["rebuild", "pix2pix", "--out", str(tmp_path), "--smoke", "--no-progress"]) == 0
    assert read_config(step.product)["training"]["epochs"] == PIX2PIX_EPOCHS
    assert plan(step, args) is None
