"""The zoo of generator families: tiny seeded models trained for a few steps on tiny IDX data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_model, quantize, save_model
from tests.conftest import write_dataset
from training.cli import main
from training.zoo import FAMILIES, BankError, ZooError, ZooOptions, load_bank, sample_bank, save_bank, train_family
from training.zoo.common import generate

# Tiny architectures: each family trains and samples in well under a second per step.
TINY = {
    "upsample-gan": {"z_dim": 8, "channels": 8},
    "pix2pix": {"channels": 8},
    "cvae": {"z_dim": 4, "channels": 4, "hidden": 16},
    "ddpm": {"channels": 8, "embed_dim": 16, "groups": 4, "timesteps": 50, "sample_steps": 3, "guidance": 2.0},
    "ae-launder": {"channels": 4, "code_channels": 2},
}
STEPS = 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("zoo-data"), n_train=200, n_test=50)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Every family trained for STEPS steps: family -> run directory."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("zoo-runs")
    runs = {}
    try:
        for name in FAMILIES:
            opts = ZooOptions(
                family=name,
                out=str(root / name),
                seed=0,
                steps=STEPS,
                batch_size=16,
                data_dir=str(data_dir),
                device="cpu",
                log_every=1,
                progress=False,
                arch=TINY[name],
            )
            assert train_family(name, opts) == root / name / "model"
            runs[name] = root / name
    finally:
        torch.set_num_threads(threads)
    return runs


def test_every_family_has_a_tiny_setting():
    assert set(TINY) == set(FAMILIES) == {"upsample-gan", "cvae", "ddpm", "ae-launder", "pix2pix"}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_training_writes_a_self_describing_run(trained, name):
    run = trained[name]
    options = json.loads((run / "options.json").read_text())
    assert options["family"] == name and options["seed"] == 0 and options["steps"] == STEPS
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [row["step"] for row in steps] == list(range(1, STEPS + 1))
    assert all(np.isfinite(v) for row in steps for v in row.values())
    assert (run / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run / "model" / "config.json").read_text())
    facts = config["training"]
    assert config["class_name"] == FAMILIES[name].model_class.__name__
    assert facts["family"] == name and facts["seed"] == 0 and facts["steps"] == STEPS
    assert facts["stopped_by"] == "steps" and facts["seconds"] >= 0 and facts["code_version"]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_bank_is_quantized_balanced_and_reproducible(trained, data_dir, name):
    model = trained[name] / "model"
    images, labels, meta = sample_bank(model, 20, seed=5, split="test", data_dir=str(data_dir))
    assert images.dtype == torch.uint8 and images.shape == (20, 28, 28)
    assert labels.dtype == torch.int64 and torch.bincount(labels, minlength=10).tolist() == [2] * 10
    assert meta["family"] == name and meta["split"] == "test" and meta["count"] == 20 and meta["seed"] == 5
    assert images.float().std() > 0  # not a blank image

    again, labels_again, _ = sample_bank(model, 20, seed=5, split="test", data_dir=str(data_dir))
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    other, _, _ = sample_bank(model, 20, seed=6, split="test", data_dir=str(data_dir))
    assert not torch.equal(images, other)


def test_ae_launder_passes_real_images_of_the_named_split(trained, data_dir):
    from training.data import load_split

    images, labels, meta = sample_bank(trained["ae-launder"] / "model", 10, seed=0, split="test", data_dir=data_dir)
    test = load_split("test", data_dir=data_dir)
    sources = torch.tensor(meta["source_index"])
    assert meta["split"] == "test" and sources.max() < len(test)
    assert torch.equal(test.labels[sources], labels)  # each keeps its source image's label
    model = load_model(trained["ae-launder"] / "model")
    with torch.no_grad():
        expected = quantize(model(test.images[sources].unsqueeze(1) / 127.5 - 1)).squeeze(1)
    assert torch.equal(images, expected)


def test_samples_are_quantized_as_the_service_quantizes(trained):
    model = load_model(trained["cvae"] / "model")
    labels, noise = torch.arange(10), torch.randn(10, model.config.z_dim)
    with torch.no_grad():
        floats = model.decode(noise, labels)  # (10, 1, 28, 28) in -1..1
    assert torch.equal(generate(FAMILIES["cvae"], model, labels, noise, None), quantize(floats).squeeze(1))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_checkpoint_round_trip_gives_the_same_samples(trained, data_dir, tmp_path, name):
    model_dir = trained[name] / "model"
    loaded = load_model(model_dir)
    copy = save_model(loaded, tmp_path / "copy", training=loaded.checkpoint["training"])
    first = sample_bank(model_dir, 10, seed=1, split="train", data_dir=str(data_dir))
    second = sample_bank(copy, 10, seed=1, split="train", data_dir=str(data_dir))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_bank_file_round_trip_and_cli(trained, data_dir, tmp_path):
    out = tmp_path / "bank.npz"
    model = trained["upsample-gan"] / "model"
    code = main(f"zoo sample --model {model} --n 30 --out {out} --seed 2 --split test --data-dir {data_dir}".split())
    assert code == 0
    images, labels, meta = load_bank(out)
    expected = sample_bank(trained["upsample-gan"] / "model", 30, seed=2, split="test")
    assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])
    assert meta["family"] == "upsample-gan" and meta["split"] == "test" and meta["count"] == 30

    save_bank(tmp_path / "again.npz", *expected)
    assert torch.equal(load_bank(tmp_path / "again.npz")[0], images)


def _write(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


GOOD_META = json.dumps({"family": "cvae", "count": 4})


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"images": np.zeros((4, 28, 28), np.uint8), "meta": np.array(GOOD_META)}, "missing array 'labels'"),
        (
            {"images": np.zeros((4, 28, 28), np.float32), "labels": np.zeros(4, np.int64), "meta": np.array(GOOD_META)},
            "images must be uint8",
        ),
        (
            {"images": np.zeros((4, 32, 32), np.uint8), "labels": np.zeros(4, np.int64), "meta": np.array(GOOD_META)},
            "(N, 28, 28)",
        ),
        (
            {
                "images": np.zeros((4, 28, 28), np.uint8),
                "labels": np.full(4, -1, np.int64),
                "meta": np.array(GOOD_META),
            },
            "class ids 0-9",
        ),
        (
            {"images": np.zeros((4, 28, 28), np.uint8), "labels": np.zeros(3, np.int64), "meta": np.array(GOOD_META)},
            "labels must be int64 of shape (4,)",
        ),
        (
            {"images": np.zeros((5, 28, 28), np.uint8), "labels": np.zeros(5, np.int64), "meta": np.array(GOOD_META)},
            "meta says 4 images",
        ),
        (
            {"images": np.zeros((4, 28, 28), np.uint8), "labels": np.zeros(4, np.int64), "meta": np.array("{oops")},
            "meta is not JSON",
        ),
    ],
)
def test_load_bank_rejects_a_malformed_file_naming_it(tmp_path, arrays, problem):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(BankError) as err:
        load_bank(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_load_bank_rejects_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(BankError, match=r"junk\.npz: not a readable npz"):
        load_bank(path)
    with pytest.raises(BankError, match=r"missing\.npz: bank file not found"):
        load_bank(tmp_path / "missing.npz")


def test_a_good_bank_loads(tmp_path):
    arrays = {"images": np.full((4, 28, 28), 255, np.uint8), "labels": np.arange(4, dtype=np.int64)}
    images, labels, meta = load_bank(_write(tmp_path / "ok.npz", meta=np.array(GOOD_META), **arrays))
    assert images.shape == (4, 28, 28) and labels.tolist() == [0, 1, 2, 3] and meta["family"] == "cvae"


def test_time_budget_stops_training_and_existing_runs_are_kept(tmp_path, data_dir):
    out = tmp_path / "run"
    code = main(
        f"zoo train --family cvae --out {out} --seed 3 --minutes 1e-9 --steps 100 --data-dir {data_dir} "
        "--device cpu --no-progress --threads 1 --batch-size 8 --arch channels=4 --arch hidden=16".split()
    )
    assert code == 0
    facts = json.loads((out / "model" / "config.json").read_text())["training"]
    assert facts["stopped_by"] == "minutes" and facts["steps"] < 100 and facts["seed"] == 3
    assert json.loads((out / "options.json").read_text())["arch"] == {"channels": 4, "hidden": 16}
    with pytest.raises(ZooError, match="already holds a run"):
        train_family("cvae", ZooOptions(family="cvae", out=str(out), data_dir=str(data_dir), device="cpu"))


def test_bad_options_are_named(tmp_path, data_dir):
    with pytest.raises(ZooError, match="unknown family 'flow'"):
        train_family("flow", ZooOptions(family="flow", out=str(tmp_path / "x")))
    with pytest.raises(ZooError, match="--steps must be at least 1"):
        train_family("cvae", ZooOptions(family="cvae", out=str(tmp_path / "x"), steps=0))
    opts = ZooOptions(family="ddpm", out=str(tmp_path / "y"), data_dir=str(data_dir), arch={"width": 3})
    with pytest.raises(ZooError, match="cannot build the model from --arch"):
        train_family("ddpm", opts)
    assert not (tmp_path / "y" / "options.json").exists()


def test_gan_test_reports_the_reference_classifiers_accuracy(trained, tmp_path, capsys):
    bank = save_bank(tmp_path / "b.npz", *sample_bank(trained["cvae"] / "model", 20, seed=0, split="test"))
    assert main(["zoo", "gan-test", str(bank), "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)[str(bank)]
    assert report["family"] == "cvae" and report["count"] == 20
    assert 0 <= report["gan_test"]["overall"] <= 1 and sum(report["gan_test"]["counts"].values()) == 20


def test_zoo_all_builds_every_instance_and_bank_and_keeps_them(tmp_path, data_dir):
    out = tmp_path / "zoo"
    argv = (
        f"zoo all --out {out} --families cvae ae-launder --steps 1 --batch-size 8 --arch channels=4 "
        f"--bank-sizes 20 10 --data-dir {data_dir} --device cpu --threads 1 --no-progress".split()
    )
    assert main(argv) == 0
    built = sorted(str(p.relative_to(out)) for p in out.rglob("bank-*.npz"))
    assert built == sorted(
        [f"{name}-s0/bank-train.npz" for name in ("cvae", "ae-launder")]
        + [f"{name}-s{seed}/bank-test.npz" for name in ("cvae", "ae-launder") for seed in (0, 1)]
    )
    images, _, meta = load_bank(out / "ae-launder-s1" / "bank-test.npz")
    assert images.shape == (10, 28, 28) and meta["split"] == "test" and meta["model_seed"] == 1
    stamp = (out / "cvae-s0" / "bank-train.npz").stat().st_mtime_ns
    assert main(argv) == 0  # a second run keeps what is there
    assert (out / "cvae-s0" / "bank-train.npz").stat().st_mtime_ns == stamp
