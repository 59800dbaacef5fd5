"""`rebuild`: the recipes are what the shipped checkpoints record, and the chain of commands runs end to end."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import pytest

from models import WEIGHTS_DIR, read_config
from training.cli import build_parser, main
from training.commands.rebuild import SMOKE, Step, recipe, shipped, with_options

OUT = Path("/rebuild")


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
    if path == "models/weights/detector":
        return OUT / "detector-stage3/detector"  # what that path held when the last run started from it
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
    for key in ("epochs", "batch_size", "lr_g", "lr_d", "ema", "d_gate", "seed", "loss"):
        assert getattr(args, key) == facts[key], key
    assert args.limit is None and facts["train_images"] == "all"
    config = read_config(WEIGHTS_DIR / "generator")["config"]
    assert (args.z_dim, args.channels, args.unconditional) == (config["z_dim"], config["channels"], False)
    assert args.aux_weight > 0 and read_config(WEIGHTS_DIR / "discriminator")["config"]["aux_classifier"]
    assert args.snapshot_epochs == [1, 2, 8]  # the snapshots the first detector runs train against


def test_the_detector_recipe_is_the_shipped_detectors() -> None:
    steps = recipe("detector", OUT)
    last = step_named(steps, "detector-stage4")
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
    augment = {key: getattr(args, key) for key in ("shift_p", "jpeg_p", "png_p", "rgb_p")}
    assert {**augment, "jpeg_quality": args.jpeg_quality} == facts["augment"]
    assert (args.val_size, args.limit) == (facts["val_images"], None)

    # The generators, in the recorded order and shares, and the held-out ones.
    given = [Path(g) for g in args.generator]
    shares = {Path(g): given.count(Path(g)) / len(given) for g in given}
    assert list(shares) == [recorded(g["path"]) for g in facts["generators"]]
    assert list(shares.values()) == pytest.approx([g["share"] for g in facts["generators"]])
    assert [Path(h) for h in args.holdout_generator] == [recorded(h) for h in facts["holdout_generators"]]

    # It starts from the third run, as recorded; the first sets the width.
    init = facts["init"]
    assert Path(args.init) == recorded(init["path"])
    assert parsed(step_named(steps, "detector-stage3")).steps == init["steps"]
    assert parsed(step_named(steps, "detector-stage1")).channels == init["channels"]

    # Every generator it trains against is made by a step of the recipe, with the recorded seed and epochs.
    for g in facts["generators"]:
        path = recorded(g["path"])
        (maker,) = [s for s in steps if s.command == "train" and s.run_dir == path.parent]
        made = parsed(maker)
        epochs = int(path.name.removeprefix("generator-epoch")) if path.name != "generator" else made.epochs
        assert (made.seed, epochs, not made.unconditional) == (g["seed"], g["epochs"], g["conditional"]), path


def test_every_generator_a_detector_run_names_is_made_before_it() -> None:
    made: set[Path] = set()
    for step in recipe("all", OUT):
        args = parsed(step)
        if step.command == "train":
            made |= {step.product, *(step.run_dir / f"generator-epoch{e:03d}" for e in args.snapshot_epochs)}
        elif step.command == "train-detector":
            assert {Path(g) for g in args.generator + args.holdout_generator} <= made, step.run_dir
            if args.init:
                assert Path(args.init) in made, step.run_dir
            made.add(step.product)
    assert set(shipped("all", OUT).values()) <= made | {OUT / "classifier", OUT / "gan-aux/discriminator"}


def test_dry_run_prints_the_commands(capsys) -> None:
    assert main(["rebuild", "detector", "--out", "out", "--dry-run", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(recipe("detector", "out"))
    words = [shlex.split(line) for line in lines]
    assert all(w[:3] == ["python", "-m", "training"] and w[w.index("--device") + 1] == "cpu" for w in words)
    assert words[0][3:6] == ["train", "--out", "out/gan-aux"]
    assert words[-1][3:6] == ["train-detector", "--out", "out/detector-stage4"]


def test_smoke_rebuild_of_the_classifier(tiny_data, tmp_path) -> None:
    assert main(["rebuild", "classifier", "--out", str(tmp_path), "--smoke", "--no-progress"]) == 0
    assert read_config(tmp_path / "classifier")["class_name"] == "Classifier"


@pytest.mark.slow
def test_smoke_rebuild_of_every_model_then_nothing_left_to_do(tiny_data, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "rebuild"
    # A GAN run that stopped after its first epoch is resumed, not started again.
    (partial,) = [s for s in recipe("all", out) if s.run_dir.name == "gan-aux-2ep"]
    words = list(partial.argv)
    words[words.index("--epochs") + 1] = "1"
    assert main([*with_options(tuple(words), SMOKE["train"]), "--no-progress"]) == 0

    assert main(["rebuild", "all", "--out", str(out), "--smoke", "--no-progress"]) == 0
    assert f"train --resume {out / 'gan-aux-2ep'} --epochs 2" in caplog.text
    for name, path in shipped("all", out).items():
        config = read_config(path)
        assert config["class_name"].lower() == name, path
    detector = read_config(shipped("all", out)["detector"])["training"]
    assert detector["init"]["path"] == str(out / "detector-stage3/detector")
    assert [g["share"] for g in detector["generators"]] == pytest.approx([0.5] + [0.1] * 5)
    assert json.loads((out / "gan-aux-2ep/generator/config.json").read_text())["training"]["epochs"] == 2

    # Run again: every checkpoint is there, nothing is trained.
    caplog.clear()
    assert main(["rebuild", "all", "--out", str(out), "--smoke", "--no-progress"]) == 0
    assert caplog.text.count("is there already") == len(recipe("all", out))


def test_an_unfinished_detector_run_is_refused_not_overwritten(tiny_data, tmp_path, caplog) -> None:
    steps = recipe("detector", tmp_path)
    for step in steps:  # every checkpoint the first detector run needs, and that run started but unfinished
        if step.command == "train":
            step.product.mkdir(parents=True)
            epochs = parsed(step).epochs
            (step.product / "config.json").write_text(json.dumps({"training": {"epochs": epochs}}))
    (tmp_path / "detector-stage1").mkdir()
    (tmp_path / "detector-stage1/options.json").write_text("{}")
    assert main(["rebuild", "detector", "--out", str(tmp_path)]) == 2
    assert f"{tmp_path / 'detector-stage1'} holds an unfinished run" in caplog.text
