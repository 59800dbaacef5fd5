import json

import pytest
import torch

from models import (
    CheckpointError,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    load_model,
    read_config,
    read_temperature,
    save_model,
    update_metrics,
)
from models.checkpoint import CONFIG_NAME, WEIGHTS_NAME


def tiny_pair():
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=8, channels=4)), Discriminator(DiscriminatorConfig(channels=4))


def test_round_trip_gives_identical_outputs(tmp_path):
    G, D = tiny_pair()
    # Give batch norm non-trivial running statistics so they are part of the round trip.
    G.train()
    G(torch.randn(16, 8), torch.arange(16) % 10)
    D(torch.randn(4, 1, 28, 28), torch.arange(4))  # one power iteration updates u, v
    G.eval(), D.eval()
    save_model(G, tmp_path / "g", training={"epochs": 3}, metrics={"fid": 1.5})
    save_model(D, tmp_path / "d")
    G2 = load_model(tmp_path / "g", expected=Generator)
    D2 = load_model(tmp_path / "d", expected=Discriminator)
    z, y = torch.randn(6, 8), torch.arange(6)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(G(z, y), G2(z, y))
        assert torch.equal(D(x, y), D2(x, y))
    assert G2.checkpoint["training"] == {"epochs": 3}
    assert G2.checkpoint["metrics"] == {"fid": 1.5}


def test_config_rebuilds_the_architecture(tmp_path):
    save_model(Generator(GeneratorConfig(z_dim=12, num_classes=0, channels=6)), tmp_path / "g")
    config = read_config(tmp_path / "g")
    assert config["class_name"] == "Generator" and config["format_version"] == 1
    assert config["config"] == {"z_dim": 12, "num_classes": 0, "channels": 6}
    assert load_model(tmp_path / "g").config == GeneratorConfig(z_dim=12, num_classes=0, channels=6)


def _edit_config(directory, **changes):
    path = directory / CONFIG_NAME
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "arch":
            config["config"].update(value)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"arch": {"channels": 5}}, "has shape"),
        ({"arch": {"depth": 3}}, "unknown Generator settings"),
        ({"arch": {"channels": -4}}, "cannot build Generator"),
        ({"class_name": "Nope"}, "unknown class_name"),
        ({"format_version": 99}, "format_version 99"),
    ],
)
def test_mismatched_config_is_refused_naming_the_file(tmp_path, changes, message):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g")
    _edit_config(tmp_path / "g", **changes)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(tmp_path / "g")
    assert str(tmp_path / "g") in str(info.value)


def test_wrong_class_is_refused(tmp_path):
    save_model(Discriminator(DiscriminatorConfig(channels=4)), tmp_path / "d")
    with pytest.raises(CheckpointError, match="holds a Discriminator, expected a Generator"):
        load_model(tmp_path / "d", expected=Generator)


def test_tampered_weights_are_refused(tmp_path):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g")
    weights = tmp_path / "g" / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[10:40] = b"\xff" * 30  # damage the safetensors header
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt") as info:
        load_model(tmp_path / "g")
    assert WEIGHTS_NAME in str(info.value)


def test_truncated_weights_are_refused(tmp_path):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g")
    weights = tmp_path / "g" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=WEIGHTS_NAME):
        load_model(tmp_path / "g")


def test_weights_of_another_model_are_refused_naming_the_tensor(tmp_path):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g")
    save_model(Discriminator(DiscriminatorConfig(channels=4)), tmp_path / "d")
    (tmp_path / "g" / WEIGHTS_NAME).write_bytes((tmp_path / "d" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match=r"tensor '.+' is missing"):
        load_model(tmp_path / "g")


def test_non_finite_weights_are_refused(tmp_path):
    G = Generator(GeneratorConfig(z_dim=8, channels=4))
    with torch.no_grad():
        G.out.bias.fill_(float("nan"))
    save_model(G, tmp_path / "g")
    with pytest.raises(CheckpointError, match=r"'out\.bias' holds NaN"):
        load_model(tmp_path / "g")


@pytest.mark.parametrize("missing", [CONFIG_NAME, WEIGHTS_NAME])
def test_missing_files_are_named(tmp_path, missing):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g")
    (tmp_path / "g" / missing).unlink()
    with pytest.raises(CheckpointError, match=missing):
        load_model(tmp_path / "g")


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nothing")


def test_invalid_json(tmp_path):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g")
    (tmp_path / "g" / CONFIG_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "g")


def test_update_metrics_merges_without_touching_weights(tmp_path):
    save_model(Generator(GeneratorConfig(z_dim=8, channels=4)), tmp_path / "g", metrics={"fid": 3.0})
    before = (tmp_path / "g" / WEIGHTS_NAME).read_bytes()
    update_metrics(tmp_path / "g", {"gan_test": 0.9})
    assert read_config(tmp_path / "g")["metrics"] == {"fid": 3.0, "gan_test": 0.9}
    assert (tmp_path / "g" / WEIGHTS_NAME).read_bytes() == before


def test_read_temperature_accepts_positive_numbers_and_names_the_file_otherwise(tmp_path):
    assert read_temperature({}, tmp_path) is None
    assert read_temperature({"metrics": {"note": "x"}}, tmp_path) is None
    assert read_temperature({"metrics": {"temperature": 2}}, tmp_path) == 2.0
    assert read_temperature({}, tmp_path, default=1.0) == 1.0  # what the callers that divide by it pass
    assert read_temperature({"metrics": {"temperature": 2}}, tmp_path, default=1.0) == 2.0
    for bad in (0, -1.5, float("nan"), float("inf"), True, "1.0"):
        with pytest.raises(CheckpointError, match=rf"{CONFIG_NAME}: metrics.temperature must be a positive number"):
            read_temperature({"metrics": {"temperature": bad}}, tmp_path)
