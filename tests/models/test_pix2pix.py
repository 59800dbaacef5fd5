"""The pix2pix networks: the U-Net's sizes and skip connections, the patch discriminator's patches, checkpoints."""

from __future__ import annotations

import pytest
import torch

from models import (
    CheckpointError,
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    Pix2PixGenerator,
    Pix2PixGeneratorConfig,
    load_model,
    save_model,
)


@pytest.fixture
def generator() -> Pix2PixGenerator:
    torch.manual_seed(0)
    return Pix2PixGenerator(Pix2PixGeneratorConfig(channels=8))


@pytest.fixture
def sketches() -> torch.Tensor:
    rng = torch.Generator().manual_seed(1)
    return (torch.rand(3, 1, 28, 28, generator=rng) > 0.8).float() * 2 - 1  # strokes +1 on -1


def test_the_generator_maps_28x28_sketches_to_28x28_images_in_range(generator, sketches) -> None:
    out = generator.eval()(sketches)
    assert out.shape == (3, 1, 28, 28) and out.min() >= -1 and out.max() <= 1
    # Each stage halves the size and its decoder twin doubles it back, down to a 1x1 bottleneck.
    sizes = []
    x = sketches
    for stage in (generator.e1, generator.e2, generator.e3, generator.e4):
        x = stage(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(8, 14, 14), (16, 7, 7), (32, 4, 4), (32, 1, 1)]


@pytest.mark.parametrize("shape", [(2, 28, 28), (2, 3, 28, 28), (2, 1, 32, 32)])
def test_the_generator_names_a_wrong_input_shape(generator, shape) -> None:
    with pytest.raises(ValueError, match=r"expected sketches of shape \(B, 1, 28, 28\)"):
        generator(torch.zeros(shape))


def test_skip_connections_carry_the_sketch_past_a_dead_bottleneck(generator, sketches) -> None:
    # With the bottleneck's weights zeroed its output is the same for every input: what still tells two
    # sketches apart comes through the skip connections.
    with torch.no_grad():
        generator.e4[0].weight.zero_()
    generator.eval()
    bottleneck = generator.e4(generator.e3(generator.e2(generator.e1(sketches))))
    assert torch.equal(bottleneck[0], bottleneck[1])
    out = generator(sketches)
    assert (out[0] - out[1]).abs().max() > 1e-3
    # A stroke added in one corner changes the output there far more than in the opposite corner (which
    # moves a little only because group norm's statistics are the whole image's).
    moved = sketches[:1].clone()
    moved[0, 0, 2:5, 2:5] = 1.0
    diff = (generator(moved) - out[:1]).abs()[0, 0]  # (28, 28)
    assert diff[:8, :8].max() > 4 * diff[20:, 20:].max()


def test_dropout_is_the_generators_noise_in_training_only(generator, sketches) -> None:
    generator.train()
    assert not torch.equal(generator(sketches), generator(sketches))
    generator.eval()
    assert torch.equal(generator(sketches), generator(sketches))
    plain = Pix2PixGenerator(Pix2PixGeneratorConfig(channels=8, dropout=0.0)).train()
    assert torch.equal(plain(sketches), plain(sketches))


def test_the_patch_discriminator_judges_pairs_patch_by_patch(sketches) -> None:
    torch.manual_seed(0)
    D = PatchDiscriminator(PatchDiscriminatorConfig(channels=8)).eval()
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    logits = D(sketches, images)
    assert logits.shape == (3, 7, 7)
    # Each logit sees an 18x18 patch: a change in the top-left corner moves the logits whose patch holds it
    # far more than the others (which move a little only through group norm's whole-image statistics).
    changed = images.clone()
    changed[:, :, :3, :3] = -changed[:, :, :3, :3]
    moved = (D(sketches, changed) - logits).abs()[0]  # (7, 7)
    assert moved[0, 0] > 4 * max(moved[4:, :].max(), moved[:, 4:].max())
    # The sketch is half of the evidence: the same image beside another sketch gets other logits.
    assert not torch.equal(D(sketches.flip(0), images), logits)
    with pytest.raises(ValueError, match="must have one shape"):
        D(sketches, images[:2])


def test_checkpoint_round_trip(tmp_path, generator, sketches) -> None:
    D = PatchDiscriminator(PatchDiscriminatorConfig(channels=8))
    save_model(generator, tmp_path / "g", training={"epochs": 1})
    save_model(D, tmp_path / "d")
    G2 = load_model(tmp_path / "g", expected=Pix2PixGenerator)
    D2 = load_model(tmp_path / "d", expected=PatchDiscriminator)
    assert G2.config == generator.config and not G2.training and G2.checkpoint["training"] == {"epochs": 1}
    assert torch.equal(G2(sketches), generator.eval()(sketches))
    images = torch.zeros(3, 1, 28, 28)
    assert torch.equal(D2(sketches, images), D(sketches, images))
    with pytest.raises(CheckpointError, match="holds a PatchDiscriminator, expected a Pix2PixGenerator"):
        load_model(tmp_path / "d", expected=Pix2PixGenerator)
