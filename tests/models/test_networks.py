import pytest
import torch

from models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, noise, quantize, requantize, to_float


@pytest.mark.parametrize("num_classes", [10, 0])
def test_generator_shape_and_range(num_classes):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, num_classes=num_classes, channels=8)).eval()
    y = torch.arange(5) if num_classes else None
    out = G(torch.randn(5, 16), y)
    assert out.shape == (5, 1, 28, 28)
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("num_classes", [10, 0])
def test_discriminator_gives_one_logit_per_image(num_classes):
    D = Discriminator(DiscriminatorConfig(num_classes=num_classes, channels=8))
    y = torch.arange(4) if num_classes else None
    assert D(torch.rand(4, 1, 28, 28) * 2 - 1, y).shape == (4,)


def test_discriminator_is_spectrally_normalized():
    D = Discriminator(DiscriminatorConfig(channels=8))
    weights = [n for n, _ in D.named_parameters() if "weight" in n]
    assert len(weights) == 7  # five convolutions, the linear head and the projection embedding
    assert all(n.endswith("parametrizations.weight.original") for n in weights)


def test_auxiliary_class_head_is_optional_and_leaves_the_logit_alone():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(channels=8, aux_classifier=True)).eval()  # eval: no power iteration
    x, y = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0, 4, 9])
    logits, classes = D.forward_with_classes(x, y)
    assert classes.shape == (3, 10)
    torch.testing.assert_close(logits, D(x, y))
    with pytest.raises(ValueError, match="no auxiliary class head"):
        Discriminator(DiscriminatorConfig(channels=8)).forward_with_classes(x, y)
    with pytest.raises(ValueError, match="needs a conditional"):
        Discriminator(DiscriminatorConfig(num_classes=0, channels=8, aux_classifier=True))


def test_conditional_networks_need_labels():
    G = Generator(GeneratorConfig(z_dim=8, channels=4))
    with pytest.raises(ValueError, match="one label per image"):
        G(torch.randn(2, 8))
    D = Discriminator(DiscriminatorConfig(channels=4))
    with pytest.raises(ValueError, match="one label per image"):
        D(torch.zeros(2, 1, 28, 28), torch.tensor([1]))


def test_label_changes_generated_image():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=8, channels=4))
    # Give the class embeddings distinct values so the label visibly matters.
    for m in G.modules():
        if hasattr(m, "embed"):
            torch.nn.init.normal_(m.embed.weight)
    G.eval()
    z = torch.randn(1, 8).repeat(2, 1)
    out = G(z, torch.tensor([0, 7]))
    assert not torch.allclose(out[0], out[1])


def test_pixel_conventions_round_trip():
    u8 = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(quantize(to_float(u8)), u8)
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.5])
    q = quantize(x)
    assert q.dtype == torch.uint8 and q.tolist() == [0, 0, 128, 191, 255, 255]
    assert torch.equal(requantize(x), to_float(q))


def test_noise_depends_on_its_own_seed_only():
    a = noise([1, 2, 3], 8)
    b = noise([3], 8)
    assert a.shape == (3, 8)
    assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])


def test_eval_batch_norm_folding_matches_normalize_then_affine():
    from models.networks import ConditionalBatchNorm2d

    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(6, 10)
    torch.nn.init.normal_(cbn.embed.weight)
    cbn.train()
    cbn(torch.randn(64, 6, 5, 5) * 3 + 1, torch.arange(64) % 10)  # non-trivial running statistics
    cbn.eval()
    x, y = torch.randn(8, 6, 5, 5), torch.arange(8)
    gain, bias = cbn.embed(y).chunk(2, dim=1)
    expected = cbn.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]
    torch.testing.assert_close(cbn(x, y), expected)
