"""BigGAN networks: shapes, ranges, the reference's architecture tables and state-dict names, conditioning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.biggan import (
    BigGANDiscriminator,
    BigGANGenerator,
    DBlock,
    GBlock,
    discriminator_arch,
    generator_arch,
    parse_attention,
)
from ganzoo.nets.layers import SelfAttention, SNConv2d, StoredStatsBatchNorm


def attention_blocks(net: nn.Module) -> list[int]:
    return [i for i, layers in enumerate(net.blocks) if any(isinstance(m, SelfAttention) for m in layers)]


@pytest.mark.parametrize(
    ("resolution", "ch", "g_attention", "d_attention"),
    [(32, 4, "16_32", "16"), (64, 4, "32_64", "16"), (128, 4, "32_64", "32")],
)
def test_shapes_and_range(resolution: int, ch: int, g_attention: str, d_attention: str) -> None:
    torch.manual_seed(0)
    g = BigGANGenerator(resolution, ch=ch, dim_z=16, n_classes=3, attention=g_attention).train()
    d = BigGANDiscriminator(resolution, ch=ch, n_classes=3, attention=d_attention).train()
    assert attention_blocks(g) and attention_blocks(d)
    z, y = torch.randn(2, 16), torch.tensor([0, 2])
    with torch.no_grad():
        x = g(z, y)
        logits = d(x, y)
    assert x.shape == (2, 3, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    g = BigGANGenerator(32, ch=2, dim_z=16, n_classes=3, attention=16, hier=True).train()
    d = BigGANDiscriminator(32, ch=2, n_classes=3, attention=16).train()
    y = torch.tensor([0, 2])
    d(g(torch.randn(2, 16), y), y).sum().backward()
    assert all(p.grad is not None for p in [*g.parameters(), *d.parameters()])


def test_greyscale_and_wider_outputs() -> None:
    g = BigGANGenerator(32, channels=1, ch=2, dim_z=8, n_classes=10, attention=None)
    d = BigGANDiscriminator(32, channels=1, ch=2, n_classes=10, attention=0, output_dim=3)
    x = g(torch.randn(3, 8), torch.tensor([1, 5, 9]))
    assert x.shape == (3, 1, 32, 32)
    assert d(x, torch.tensor([1, 5, 9])).shape == (3, 3)
    assert d.blocks[0][0].conv1.weight.shape == (8, 1, 3, 3)


def test_architecture_tables_follow_the_reference() -> None:
    assert [(s.in_channels, s.out_channels) for s in generator_arch(128, ch=1)] == [
        (16, 16),
        (16, 8),
        (8, 4),
        (4, 2),
        (2, 1),
    ]
    assert [s.out_channels for s in generator_arch(256, ch=1)] == [16, 8, 8, 4, 2, 1]
    assert [s.out_channels for s in generator_arch(32, ch=2)] == [8, 8, 8]
    assert [s.resolution for s in generator_arch(64)] == [8, 16, 32, 64]
    d256 = discriminator_arch(256, ch=1, channels=3)
    assert [s.in_channels for s in d256] == [3, 1, 2, 4, 8, 8, 16]
    assert [s.out_channels for s in d256] == [1, 2, 4, 8, 8, 16, 16]
    assert [s.resample for s in d256] == [True] * 6 + [False]
    d32 = discriminator_arch(32, ch=1)
    assert [s.resolution for s in d32] == [16, 16, 16, 16]
    assert [s.resample for s in d32] == [True, True, False, False]
    assert [s.resolution for s in discriminator_arch(64)] == [32, 16, 8, 4, 4]
    g256, d256_net = (
        BigGANGenerator(256, ch=2, dim_z=8, n_classes=2),
        BigGANDiscriminator(256, ch=2, n_classes=2, attention=0),
    )
    assert (len(g256.blocks), len(d256_net.blocks)) == (6, 7)


def test_attention_placement_follows_the_tables() -> None:
    assert attention_blocks(BigGANGenerator(64, ch=4, dim_z=8, n_classes=2, attention="32_64")) == [2, 3]
    assert attention_blocks(BigGANGenerator(128, ch=4, dim_z=8, n_classes=2)) == [3]  # default "64"
    assert attention_blocks(BigGANGenerator(32, ch=4, dim_z=8, n_classes=2, attention=[16])) == [1]
    assert attention_blocks(BigGANGenerator(32, ch=4, dim_z=8, n_classes=2, attention="0")) == []
    assert attention_blocks(BigGANDiscriminator(64, ch=4, n_classes=2, attention="8_16")) == [1, 2]
    assert attention_blocks(BigGANDiscriminator(32, ch=2, n_classes=2, attention=16)) == [0, 1, 2, 3]
    assert attention_blocks(BigGANDiscriminator(32, ch=2, n_classes=2)) == []  # "64" is not in the 32 px table
    assert parse_attention("32_64") == {32, 64} and parse_attention(None) == set() and parse_attention([0]) == set()


def test_blocks_have_shortcut_convs_only_where_needed() -> None:
    d = BigGANDiscriminator(32, ch=2, n_classes=2, attention=0)
    assert [hasattr(layers[0], "conv_sc") for layers in d.blocks] == [True, True, False, False]
    assert [layers[0].preactivation for layers in d.blocks] == [False, True, True, True]
    block = GBlock(
        4, 4, lambda i, o, **kw: SNConv2d(i, o, **{"kernel_size": 3, "padding": 1, **kw}), nn.Identity, False
    )
    assert not hasattr(block, "conv_sc")
    narrow = DBlock(4, 8, wide=False, downsample=True, which_conv=lambda i, o, **kw: nn.Conv2d(i, o, 3, 1, 1))
    assert narrow.conv1.out_channels == 4 and narrow(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)


def test_preactivated_shortcut_sees_the_input_before_the_relu() -> None:
    torch.manual_seed(1)
    conv = lambda i, o, kernel_size=3, padding=1: nn.Conv2d(i, o, kernel_size, padding=padding)  # noqa: E731
    block = DBlock(3, 3, conv, preactivation=True, downsample=False)
    x = torch.randn(1, 3, 4, 4)
    expected = block.conv2(F.relu(block.conv1(F.relu(x)))) + x
    torch.testing.assert_close(block(x), expected)


def test_hierarchical_z_is_split_over_the_blocks() -> None:
    torch.manual_seed(2)
    g = BigGANGenerator(32, ch=4, dim_z=30, n_classes=3, hier=True, attention=0).eval()
    assert (g.num_slots, g.z_chunk_size, g.dim_z, g.shared_dim) == (4, 7, 28, 30)
    assert g.linear.in_features == 7
    assert g.blocks[0][0].bn1.gain.in_features == 37
    z, y = torch.randn(2, 28), torch.tensor([0, 1])
    base = g(z, y)
    for chunk in range(4):
        changed = z.clone()
        changed[:, 7 * chunk : 7 * chunk + 7] = torch.randn(2, 7)
        assert not torch.allclose(g(changed, y), base), chunk
    with pytest.raises(ConfigError, match=r"\(N, 28\)"):
        g(torch.randn(2, 30), y)


@pytest.mark.parametrize("shared", [True, False])
def test_one_hot_mixtures_give_the_same_images_as_class_ids(shared: bool) -> None:
    torch.manual_seed(3)
    g = BigGANGenerator(32, ch=2, dim_z=8, n_classes=4, shared=shared, attention=0).eval()
    z, y = torch.randn(3, 8), torch.tensor([3, 0, 1])
    torch.testing.assert_close(g(z, F.one_hot(y, 4).float()), g(z, y))
    assert not torch.allclose(g(z, torch.tensor([2, 2, 2])), g(z, y))
    half = torch.full((3, 4), 0.0)
    half[:, 0] = half[:, 1] = 0.5
    if shared:  # the shared embedding blends linearly
        zeros, ones = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
        expected = (g.class_embedding(zeros) + g.class_embedding(ones)) / 2
    else:  # every conditional BN gets the mixture itself
        expected = half
    torch.testing.assert_close(g.class_embedding(half), expected)


def test_generator_state_dict_uses_the_reference_names() -> None:
    g = BigGANGenerator(128, ch=8, dim_z=16, n_classes=5, num_svs=2)
    sd = g.state_dict()
    for key in [
        "shared.weight",
        "linear.weight",
        "linear.bias",
        "linear.u0",
        "linear.sv1",
        "blocks.0.0.bn1.gain.weight",
        "blocks.0.0.bn1.gain.u0",
        "blocks.0.0.bn1.bias.sv0",
        "blocks.0.0.bn1.stored_mean",
        "blocks.4.0.bn2.stored_var",
        "blocks.0.0.conv1.weight",
        "blocks.0.0.conv2.u1",
        "blocks.0.0.conv_sc.weight",
        "blocks.3.1.theta.weight",
        "blocks.3.1.phi.u0",
        "blocks.3.1.g.sv0",
        "blocks.3.1.o.weight",
        "blocks.3.1.gamma",
        "output_layer.0.gain",
        "output_layer.0.bias",
        "output_layer.0.stored_mean",
        "output_layer.0.stored_var",
        "output_layer.2.weight",
        "output_layer.2.u0",
    ]:
        assert key in sd, key
    assert "blocks.0.0.bn1.gain.bias" not in sd and not any("num_batches" in k for k in sd)
    assert sd["shared.weight"].shape == (5, 16) and sd["linear.weight"].shape == (128 * 16, 16)
    assert sd["blocks.0.0.bn1.gain.weight"].shape == (128, 16) and sd["linear.u0"].shape == (1, 128 * 16)
    assert sd["output_layer.2.weight"].shape == (3, 8, 3, 3) and sd["linear.sv0"].shape == (1,)


def test_unshared_generator_state_dict_is_complete_and_exact() -> None:
    g = BigGANGenerator(32, ch=4, dim_z=8, n_classes=6, shared=False, attention=0)
    sn = ("weight", "bias", "u0", "sv0")
    expected = {f"linear.{k}" for k in sn}
    for i in range(3):
        p = f"blocks.{i}.0"
        expected |= {f"{p}.{conv}.{k}" for conv in ("conv1", "conv2", "conv_sc") for k in sn}
        expected |= {
            f"{p}.{bn}.{k}"
            for bn in ("bn1", "bn2")
            for k in ("gain.weight", "bias.weight", "stored_mean", "stored_var")
        }
    expected |= {
        "output_layer.0.gain",
        "output_layer.0.bias",
        "output_layer.0.stored_mean",
        "output_layer.0.stored_var",
    }
    expected |= {f"output_layer.2.{k}" for k in sn}
    sd = g.state_dict()
    assert set(sd) == expected
    assert sd["blocks.1.0.bn2.gain.weight"].shape == (6, 16)  # a plain (n_classes, C) embedding, no SN buffers
    assert isinstance(g.shared, nn.Identity)


def test_discriminator_state_dict_uses_the_reference_names() -> None:
    d = BigGANDiscriminator(128, ch=8, n_classes=5, attention="32")
    sd = d.state_dict()
    for key in ["blocks.0.0.conv1.weight", "blocks.0.0.conv_sc.u0", "blocks.1.1.gamma", "blocks.5.0.conv2.sv0"]:
        assert key in sd, key
    assert "blocks.0.1.gamma" not in sd and "blocks.5.0.conv_sc.weight" not in sd  # 128 -> 128, no downsampling
    assert sd["linear.weight"].shape == (1, 128) and sd["linear.u0"].shape == (1, 1)
    assert sd["embed.weight"].shape == (5, 128) and sd["embed.u0"].shape == (1, 5) and "embed.sv0" in sd


def test_state_dict_round_trips_into_a_fresh_net() -> None:
    torch.manual_seed(4)
    g = BigGANGenerator(32, ch=4, dim_z=8, n_classes=3, attention=16).train()
    g(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))  # move u and the stored statistics off their init
    fresh = BigGANGenerator(32, ch=4, dim_z=8, n_classes=3, attention=16)
    fresh.load_state_dict(g.state_dict())
    z, y = torch.randn(2, 8), torch.tensor([1, 2])
    torch.testing.assert_close(fresh.eval()(z, y), g.eval()(z, y), rtol=0, atol=0)


def test_discriminator_projects_onto_the_class_embedding() -> None:
    torch.manual_seed(5)
    d = BigGANDiscriminator(32, ch=2, n_classes=4, attention=0).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a, b = d(x, torch.tensor([0, 0])), d(x, torch.tensor([3, 0]))
    assert a[0] != b[0] and a[1] == b[1]
    with torch.no_grad():  # every class the same embedding: the class no longer matters
        d.embed.weight.copy_(d.embed.weight[:1].expand(4, -1))
    torch.testing.assert_close(d(x, torch.tensor([0, 1])), d(x, torch.tensor([2, 3])))


def test_init_schemes() -> None:
    torch.manual_seed(6)
    g = BigGANGenerator(32, ch=4, dim_z=8, n_classes=3, attention=0)
    w = g.linear.weight  # (256, 8): orthonormal columns
    torch.testing.assert_close(w.t() @ w, torch.eye(8), atol=1e-5, rtol=0)
    shared = g.shared.weight  # (3, 8): orthonormal rows
    torch.testing.assert_close(shared @ shared.t(), torch.eye(3), atol=1e-5, rtol=0)
    n02 = BigGANDiscriminator(32, ch=4, n_classes=3, attention=0, init="N02")
    assert n02.blocks[1][0].conv1.weight.std().item() == pytest.approx(0.02, rel=0.1)
    xavier = BigGANGenerator(32, ch=4, dim_z=8, n_classes=3, attention=0, init="xavier")
    bound = (6 / (16 * 9 + 16 * 9)) ** 0.5
    assert xavier.blocks[0][0].conv1.weight.abs().max().item() <= bound
    assert xavier.blocks[0][0].conv1.weight.abs().max().item() > 0.9 * bound


def test_stored_stats_norms_are_all_reachable_for_standing_statistics() -> None:
    g = BigGANGenerator(32, ch=2, dim_z=8, n_classes=3, attention=0)
    norms = [m for m in g.modules() if isinstance(m, StoredStatsBatchNorm)]
    assert len(norms) == 2 * 3 + 1


def test_bad_configs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="resolution=32, 64, 128 or 256"):
        BigGANGenerator(48)
    with pytest.raises(ConfigError, match="resolution=32, 64, 128 or 256"):
        BigGANDiscriminator(512)
    with pytest.raises(ConfigError, match="init=ortho, N02, glorot or xavier"):
        BigGANGenerator(32, ch=2, init="kaiming")
    with pytest.raises(ConfigError, match="init=ortho"):
        BigGANDiscriminator(32, ch=2, init="orthogonal")
    with pytest.raises(ConfigError, match="shared=true"):
        BigGANGenerator(32, ch=2, shared=False, hier=True)
    with pytest.raises(ConfigError, match="dim_z >= 4"):
        BigGANGenerator(32, ch=2, dim_z=3, hier=True)
    with pytest.raises(ConfigError, match="attention="):
        BigGANGenerator(32, ch=2, attention="sixty-four")
    with pytest.raises(ConfigError, match="attention="):
        BigGANDiscriminator(32, ch=2, attention=[-16])
