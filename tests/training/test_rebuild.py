"""`rebuild`: the recipes are what the shipped checkpoints record, and the chain of commands runs end to end."""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

import pytest
import torch

from models import WEIGHTS_DIR, read_config
from training.cli import build_parser, main
from training.commands.rebuild import SMOKE, Step, recipe, shipped, with_options
from training.loop import TrainOptions, fit_to_device

OUT = Path("/rebuild")
PLAIN = argparse.Namespace(smoke=False, data_dir=None, device=None, no_progress=False)


def parsed(step: Step):
    return build_parser().parse_args(list(step.argv))


def step_named(steps: list[Step], name: str) -> Step:
    (step,) = [s for s in steps if s.run_dir.name == name or s.product.name == name]
    return step


def recorded(path: str) -> Path:
    """Where a rebuild puts a checkpoint that a shipped config names: runs/X under OUT, the served generator as
    the GAN run that made it."""
    if path == "models/weights/generator":
        return OUT / "gan-aux/generator"
    if path == "runs/det-previous":
        return OUT / "detector-stage4/detector"  # the fourth run's weights, kept when the fifth was shipped
    assert path.startswith("runs/"), path
    return OUT / path.removeprefix("runs/")


def training_facts(name: str) -> dict:
    return read_config(WEIGHTS_DIR / name)["training"]


def test_the_classifier_recipe_is_the_shipped_classifiers() -> None:
    args = parsed(step_named(recipe("classifier", OUT), "classifier"))
    facts, config = training_facts("classifier"), read_config(WEIGHTS_DIR / "classifier")["config"]
    r = facts["recipe"]
    assert (args.epochs, args.batch_size, args.lr, args.weight_decay) == (
        r["epochs"],
        r["batch_size"],
        r["lr"],
        r["weight_decay"],
    )
    assert (not args.no_flip, args.shift, args.dropout) == (r["flip"], r["shift"], r["dropout"])
    assert (args.channels, args.feature_dim) == (config["channels"], config["feature_dim"])
    assert (args.seed, args.threads, args.limit) == (facts["seed"], facts["threads"], None)


def test_the_gan_recipe_is_the_shipped_generators_and_discriminators() -> None:
    args = parsed(step_named(recipe("gan", OUT), "gan-aux"))
    facts = training_facts("generator")
    assert training_facts("discriminator") == {k: v for k, v in facts.items() if k != "weights"}
    # The batch size and learning rates the command picks on the CPU, where the shipped run trained (on CUDA it
    # picks a larger batch and scales the rates: training.loop.fit_to_device).
    assert args.batch_size is None
    fitted = TrainOptions(out="", batch_size=None, lr_g=args.lr_g, lr_d=args.lr_d)
    fit_to_device(fitted, torch.device(facts["device"]))
    assert (fitted.batch_size, fitted.lr_g, fitted.lr_d) == (facts["batch_size"], facts["lr_g"], facts["lr_d"])
    for key in ("epochs", "ema", "d_gate", "seed", "loss"):
        assert getattr(args, key) == facts[key], key
    assert args.limit is None and facts["train_images"] == "all"
    config = read_config(WEIGHTS_DIR / "generator")["config"]
    assert (args.z_dim, args.channels, args.unconditional) == (config["z_dim"], config["channels"], False)
    assert args.aux_weight > 0 and read_config(WEIGHTS_DIR / "discriminator")["config"]["aux_classifier"]
    assert args.snapshot_epochs == [1, 2, 8]  # the snapshots the first detector runs train against


def test_the_detector_recipe_is_the_shipped_detectors() -> None:
    steps = recipe("detector", OUT)
    last = step_named(steps, "detector-stage5")
    assert last.product == shipped("detector", OUT)["detector"]
    args, facts = parsed(last), training_facts("detector")
    for key in ("steps", "batch_size", "lr", "warmup_steps", "weight_decay", "label_dropout", "ema_decay", "dropout"):
        assert getattr(args, key) == facts[key], key
    assert (args.mirror_p, args.mirror_real_p, args.seed, args.stream_seed) == (
        facts["mirror_p"],
        facts["mirror_real_p"],
        facts["seed"],
        facts["stream_seed"],
    )
    augment = facts["augment"]
    assert (args.augment_p, args.chain_p, args.augment_kinds) == (augment["p"], augment["chain_p"], augment["kinds"])
    assert (args.jpeg_quality, args.blur_sigma) == (augment["jpeg_quality"], augment["blur_sigma"])
    assert (args.val_size, args.limit) == (facts["val_images"], None)

    # The fake sources, in the recorded order and shares: the GAN, then the zoo's banks.
    given = [Path(g) for g in [*args.generator, *args.bank]]
    shares = {Path(g): given.count(Path(g)) / len(given) for g in given}
    assert list(shares) == [recorded(g["path"]) for g in facts["generators"]]
    assert list(shares.values()) == pytest.approx([g["share"] for g in facts["generators"]])
    assert [Path(h) for h in args.holdout_generator] == [recorded(h) for h in facts["holdout_generators"]]

    # It starts from the fourth run, as recorded; the first sets the width.
    init = facts["init"]
    assert Path(args.init) == recorded(init["path"])
    assert parsed(step_named(steps, "detector-stage4")).steps == init["steps"]
    assert parsed(step_named(steps, "detector-stage1")).channels == init["channels"]

    # Every bank it trains against is sampled by a step of the recipe from a zoo model of the recorded family.
    for g in facts["generators"][1:]:
        bank = recorded(g["path"])
        (maker,) = [s for s in steps if s.product == bank]
        assert maker.argv[:2] == ("zoo", "sample") and f"/{g['family']}-s0/" in str(bank)
        # ... from a model trained as long as the recorded one, with the recorded seeds.
        (trainer,) = [s for s in steps if s.product == bank.parent / "model"]
        zoo = build_parser().parse_args(list(trainer.argv))
        sample = build_parser().parse_args(list(maker.argv))
        assert (zoo.steps, zoo.seed) == (g["model_steps"], g["model_seed"])
        assert (sample.seed, sample.split) == (g["bank_seed"], g["bank_split"])


def test_every_generator_a_detector_run_names_is_made_before_it() -> None:
    made: set[Path] = set()
    for step in recipe("all", OUT):
        args = parsed(step)
        if step.command == "train":
            made |= {step.product, *(step.run_dir / f"generator-epoch{e:03d}" for e in args.snapshot_epochs)}
        elif step.command == "zoo":
            if step.argv[1] == "sample":
                assert Path(step.argv[step.argv.index("--model") + 1]) in made, step.product
            made.add(step.product)
        elif step.command == "train-detector":
            assert {Path(g) for g in args.generator + args.bank + args.holdout_generator} <= made, step.run_dir
            if args.init:
                assert Path(args.init) in made, step.run_dir
            made.add(step.product)
    assert set(shipped("all", OUT).values()) <= made | {OUT / "classifier", OUT / "gan-aux/discriminator"}


def test_dry_run_prints_the_commands(capsys) -> None:
    assert main(["rebuild", "all", "--out", "out", "--dry-run", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(recipe("all", "out"))
    words = [shlex.split(line) for line in lines]
    assert all(w[:3] == ["python", "-m", "training"] and w[w.index("--device") + 1] == "cpu" for w in words)
    assert words[0][3:6] == ["train-classifier", "--out", "out/classifier"]
    assert words[1][3:6] == ["train", "--out", "out/gan-aux"]
    assert words[-1][3:6] == ["train-detector", "--out", "out/detector-stage5"]


def test_smoke_rebuild_of_the_classifier(tiny_data, tmp_path) -> None:
    assert main(["rebuild", "classifier", "--out", str(tmp_path), "--smoke", "--no-progress"]) == 0
    assert read_config(tmp_path / "classifier")["class_name"] == "Classifier"


@pytest.mark.slow
def test_smoke_rebuild_of_the_gan_resumes_a_stopped_run_then_has_nothing_left_to_do(tiny_data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    # A GAN run that stopped after its first epoch is resumed, not started again.
    (step,) = recipe("gan", tmp_path)
    words = list(with_options(step.argv, SMOKE["train"]))
    words[words.index("--epochs") + 1] = "1"
    assert main([*words, "--no-progress"]) == 0

    assert main(["rebuild", "gan", "--out", str(tmp_path), "--smoke", "--no-progress"]) == 0
    assert f"train --resume {step.run_dir} --epochs 14" in caplog.text
    for name, path in shipped("gan", tmp_path).items():
        config = read_config(path)
        assert (config["class_name"].lower(), config["training"]["epochs"]) == (name, 14)
    assert all((step.run_dir / f"generator-epoch{e:03d}").is_dir() for e in (1, 2, 8))

    # Run again: the checkpoints are there, nothing is trained.
    caplog.clear()
    assert main(["rebuild", "gan", "--out", str(tmp_path), "--smoke", "--no-progress"]) == 0
    assert "is there already" in caplog.text and "--resume" not in caplog.text


@pytest.mark.slow
def test_smoke_rebuild_of_every_model(tiny_data, tmp_path) -> None:
    out = tmp_path / "rebuild"
    assert main(["rebuild", "all", "--out", str(out), "--smoke", "--no-progress"]) == 0
    for name, path in shipped("all", out).items():
        assert read_config(path)["class_name"].lower() == name, path
    detector = read_config(shipped("all", out)["detector"])["training"]
    assert detector["init"]["path"] == str(out / "detector-stage4/detector")
    assert [g["share"] for g in detector["generators"]] == pytest.approx([1 / 3] + [1 / 6] * 4)
    assert [g["family"] for g in detector["generators"]] == ["gan", "cvae", "ae-launder", "upsample-gan", "ddpm"]


def test_a_recipe_this_code_refuses_stops_before_anything_runs(tmp_path, caplog, monkeypatch) -> None:
    gone = Step(("train", "--out", str(tmp_path / "gan"), "--epochs", "1", "--no-such-option", "1"), tmp_path)
    monkeypatch.setattr("training.commands.rebuild.recipe", lambda target, out: [*recipe("classifier", out), gone])
    assert main(["rebuild", "all", "--out", str(tmp_path)]) == 2
    assert "gan: python -m training: error: unrecognized arguments: --no-such-option 1" in caplog.text
    assert not (tmp_path / "classifier").exists()  # the first step, valid, did not run either


def test_an_unfinished_run_that_cannot_be_resumed_is_refused_not_overwritten(tmp_path, caplog) -> None:
    (tmp_path / "gan-aux").mkdir()  # stopped before its first epoch ended: options, no resume state
    (tmp_path / "gan-aux/options.json").write_text("{}")
    assert main(["rebuild", "gan", "--out", str(tmp_path)]) == 2
    assert f"{tmp_path / 'gan-aux'} holds an unfinished run that cannot be resumed" in caplog.text
    assert (tmp_path / "gan-aux/options.json").read_text() == "{}"
