"""The training command on tiny IDX data: artifacts, determinism, exact resume."""

import json
import math

import pytest
import torch
from PIL import Image

from models import Discriminator, Generator, load_model, to_float
from training.cli import main
from training.data import load_split
from training.loop import Trainer, TrainOptions

TINY = ["--epochs", "1", "--batch-size", "16", "--z-dim", "8", "--channels", "4", "--no-progress"]


def tiny_options(out, **overrides) -> TrainOptions:
    base = dict(out=str(out), epochs=2, batch_size=16, z_dim=8, channels=4, limit=96, progress=False, device="cpu")
    return TrainOptions(**{**base, **overrides})


def test_one_epoch_writes_every_artifact(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--snapshot-epochs", "1"]) == 0
    options = json.loads((run / "options.json").read_text())
    assert options["batch_size"] == 16 and options["seed"] == 0
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 1 and stats[0]["epoch"] == 1 and stats[0]["step"] == 200 // 16
    assert {"loss_d", "loss_g", "images_per_s"} <= stats[0].keys()
    assert (run / "steps.jsonl").read_text().strip()
    with Image.open(run / "samples" / "epoch_001.png") as grid:
        assert grid.width > 280 and grid.height > 280  # 10 x 10 cells of 28 px plus labels
    with Image.open(run / "progress.gif") as gif:
        assert gif.format == "GIF"
    with Image.open(run / "losses.png") as curves:
        assert curves.format == "PNG"
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "state.pt").is_file()
    G = load_model(run / "generator", expected=Generator)
    assert load_model(run / "generator-epoch001", expected=Generator).config == G.config
    D = load_model(run / "discriminator", expected=Discriminator)
    assert G.checkpoint["training"]["epochs"] == 1 and G.checkpoint["training"]["dataset"] == "fashion-mnist"
    with torch.no_grad():
        images = G(torch.randn(3, 8), torch.tensor([0, 5, 9]))
        assert images.shape == (3, 1, 28, 28)
        assert D(images, torch.tensor([0, 5, 9])).shape == (3,)


def test_unconditional_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY, "--unconditional", "--limit", "64", "--loss", "bce"]) == 0
    G = load_model(run / "generator", expected=Generator)
    assert not G.conditional and G(torch.randn(2, 8)).shape == (2, 1, 28, 28)


def test_aux_class_loss_trains_d_class_head(tiny_data, tmp_path):
    # The auxiliary head is learned from real images: its cross-entropy on them must fall below chance.
    run = tmp_path / "aux"
    Trainer(tiny_options(run, epochs=3, aux_weight=1.0, limit=None, lr_d=2e-3)).train()
    D = load_model(run / "discriminator", expected=Discriminator)
    assert D.config.aux_classifier
    data = load_split("train", data_dir=str(tiny_data))
    x, y = to_float(data.images[:160]).unsqueeze(1), data.labels[:160].long()
    with torch.no_grad():
        logits, classes = D.forward_with_classes(x, y)
    assert logits.shape == (160,) and classes.shape == (160, 10)
    assert torch.nn.functional.cross_entropy(classes, y) < math.log(10) - 0.1


def test_runs_from_before_the_class_head_resume_without_it(tiny_data, tmp_path):
    run = tmp_path / "old"
    Trainer(tiny_options(run, epochs=1, aux_weight=0.0)).train()
    options = json.loads((run / "options.json").read_text())
    del options["aux_weight"]  # as written before the option existed
    (run / "options.json").write_text(json.dumps(options))
    Trainer.resume(run, epochs=2).train()
    assert not load_model(run / "discriminator", expected=Discriminator).config.aux_classifier
    assert json.loads((run / "options.json").read_text())["aux_weight"] == 0.0


def test_default_class_loss_weight_depends_on_conditioning(tiny_data, tmp_path):
    assert Trainer(tiny_options(tmp_path / "c", epochs=1)).opts.aux_weight == 0.5
    assert Trainer(tiny_options(tmp_path / "u", epochs=1, unconditional=True)).opts.aux_weight == 0.0


def _weights(run):
    G = load_model(run / "generator")
    D = load_model(run / "discriminator")
    return {**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()}}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_weights(tiny_data, tmp_path):
    Trainer(tiny_options(tmp_path / "a", d_gate=0.9)).train()
    Trainer(tiny_options(tmp_path / "b", d_gate=0.9)).train()
    Trainer(tiny_options(tmp_path / "c", d_gate=0.9, seed=1)).train()
    _assert_same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    with pytest.raises(AssertionError):
        _assert_same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_resumed_run_matches_uninterrupted(tiny_data, tmp_path):
    Trainer(tiny_options(tmp_path / "full", epochs=3)).train()
    Trainer(tiny_options(tmp_path / "split", epochs=1)).train()
    # A run killed mid-epoch leaves step lines past its last saved state: resuming drops them.
    with open(tmp_path / "split" / "steps.jsonl", "a") as f:
        f.write(json.dumps({"step": 10**6, "epoch": 2, "loss_d": 9.0, "loss_g": 9.0}) + "\n")
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "3", "--no-progress"]) == 0
    _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "split"))
    full = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "state.pt", weights_only=True)
    assert int(split["step"]) == int(full["step"]) and torch.equal(split["rng"], full["rng"])
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "split" / "stats.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    steps = [json.loads(x)["step"] for x in (tmp_path / "split" / "steps.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) == int(full["step"])
    assert len(list((tmp_path / "split" / "samples").glob("epoch_*.png"))) == 3


def test_d_gate_skips_steps_when_d_wins(tiny_data, tmp_path):
    # With a gate of a tiny fraction, D's step is skipped as soon as it calls any fake fake.
    record = Trainer(tiny_options(tmp_path / "g", epochs=1, d_gate=1e-6)).train()
    assert record["d_skipped_steps"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "X", "--device", "cuda"], "CUDA is not available"),
        (["--out", "X", "--d-gate", "1.5"], "--d-gate"),
        (["--out", "X", "--unconditional", "--aux-weight", "0.5"], "--aux-weight"),
        (["--out", "X", "--batch-size", "1000"], "fewer than one batch"),
        (["--resume", "NOWHERE"], "is NOWHERE a run directory"),
        ([], "give --out"),
    ],
)
def test_bad_options_exit_2_with_a_message(tiny_data, tmp_path, caplog, monkeypatch, args, message):
    if torch.cuda.is_available() and "cuda" in args:
        pytest.skip("CUDA is present")
    monkeypatch.chdir(tmp_path)
    assert main(["train", *args, "--epochs", "1", "--no-progress"]) == 2
    assert message in caplog.text


def test_missing_data_exits_2_listing_places(tmp_path, caplog, monkeypatch):
    from training import data

    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "none"))
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    assert main(["train", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "Tried:" in caplog.text and "apt-get install dataset-fashion-mnist" in caplog.text
