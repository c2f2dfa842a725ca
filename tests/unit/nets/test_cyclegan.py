"""CycleGAN networks: shapes, ranges, the reference's parameter counts, layout and init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.cyclegan import PatchDiscriminator, ResnetBlock, ResnetGenerator


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("n_blocks", [6, 9])
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 48), (256, 256)])
def test_generator_shapes_and_range(n_blocks: int, upsample: str, height: int, width: int) -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(in_channels=3, out_channels=1, ngf=4, n_blocks=n_blocks, upsample=upsample).eval()
    x = torch.rand(2, 3, height, width) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 1, height, width)
    assert y.min() >= -1 and y.max() <= 1
    assert sum(isinstance(m, ResnetBlock) for m in g.model) == n_blocks


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_generator_with_dropout_and_norms_runs_in_training_mode(norm: str) -> None:
    g = ResnetGenerator(ngf=4, n_blocks=2, norm=norm, use_dropout=True).train()
    y = g(torch.rand(2, 3, 16, 16) * 2 - 1)
    y.mean().backward()
    assert y.shape == (2, 3, 16, 16)
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == 2


@pytest.mark.parametrize("size", [30, 2])
def test_generator_refuses_sides_not_multiple_of_4(size: int) -> None:
    with pytest.raises(ConfigError, match="multiples of 4"):
        ResnetGenerator(ngf=4, n_blocks=1)(torch.zeros(1, 3, size, 32))


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="norm=instance or norm=batch"):
        ResnetGenerator(norm="group")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="upsample=transpose or resize"):
        ResnetGenerator(upsample="pixelshuffle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_layers"):
        PatchDiscriminator(n_layers=-1)


@pytest.mark.parametrize(
    ("n_layers", "size", "out"), [(3, 256, 30), (3, 128, 14), (1, 64, 30), (2, 64, 14), (4, 256, 14), (0, 64, 30)]
)
def test_patch_discriminator_output_size(n_layers: int, size: int, out: int) -> None:
    d = PatchDiscriminator(in_channels=3, ndf=4, n_layers=n_layers)
    logits = d(torch.rand(2, 3, size, size) * 2 - 1)
    assert logits.shape == (2, 1, out, out)
    assert logits.min() < 0  # raw logits: no sigmoid


def test_default_parameter_counts_match_the_reference() -> None:
    """resnet_9blocks ngf=64 and the 70x70 PatchGAN ndf=64, instance norm (bias on every conv)."""
    # G: 7x7 3->64, 3x3 64->128, 128->256, 9 blocks of two 3x3 256->256, transposed 256->128, 128->64, 7x7 64->3.
    g_expected = (
        (3 * 64 * 49 + 64) + (64 * 128 * 9 + 128) + (128 * 256 * 9 + 256)
        + 9 * 2 * (256 * 256 * 9 + 256)
        + (256 * 128 * 9 + 128) + (128 * 64 * 9 + 64) + (64 * 3 * 49 + 3)
    )  # fmt: skip
    # D: 4x4 convs 3->64->128->256->512->1, all with bias.
    d_expected = sum(i * o * 16 + o for i, o in [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)])
    assert g_expected == 11_378_179 and d_expected == 2_764_737
    assert num_params(ResnetGenerator()) == 11_378_179
    assert num_params(PatchDiscriminator()) == 2_764_737
    # resnet_6blocks drops three blocks; batch norm trades conv biases for BatchNorm scale and shift.
    assert num_params(ResnetGenerator(n_blocks=6)) == 11_378_179 - 3 * 2 * (256 * 256 * 9 + 256)
    assert num_params(ResnetGenerator(norm="batch")) == 11_378_179 - (64 + 128 + 256 + 18 * 256 + 128 + 64) + 2 * (
        64 + 128 + 256 + 18 * 256 + 128 + 64
    )


def test_reference_layout() -> None:
    g = ResnetGenerator()
    keys = {k for k in g.state_dict() if "conv_block" not in k}
    convs = {f"model.{i}.{p}" for i in (1, 4, 7, 19, 22, 26) for p in ("weight", "bias")}
    assert keys == convs
    assert set(g.model[10].state_dict()) == {f"conv_block.{i}.{p}" for i in (1, 5) for p in ("weight", "bias")}
    up = g.model[19]
    assert isinstance(up, nn.ConvTranspose2d)
    assert (up.kernel_size, up.stride, up.padding, up.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1))
    assert isinstance(g.model[0], nn.ReflectionPad2d) and isinstance(g.model[27], nn.Tanh)
    norm = g.model[2]
    assert isinstance(norm, nn.InstanceNorm2d) and not norm.affine and not norm.track_running_stats
    assert not any(isinstance(m, nn.Dropout) for m in g.modules())

    gb = ResnetGenerator(norm="batch", n_blocks=6)
    assert gb.model[1].bias is None and gb.model[23].bias is not None and isinstance(gb.model[2], nn.BatchNorm2d)
    assert gb.model[-2] is gb.model[23]

    d = PatchDiscriminator()
    assert set(d.state_dict()) == {f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")}
    strides = [m.stride for m in d.model if isinstance(m, nn.Conv2d)]
    assert strides == [(2, 2), (2, 2), (2, 2), (1, 1), (1, 1)]
    assert [m.out_channels for m in d.model if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512, 1]
    assert [m.out_channels for m in PatchDiscriminator(ndf=8, n_layers=5).model if isinstance(m, nn.Conv2d)] == [
        8, 16, 32, 64, 64, 64, 1,
    ]  # fmt: skip
    db = PatchDiscriminator(norm="batch")
    assert db.model[0].bias is not None and db.model[2].bias is None and db.model[11].bias is not None


def test_init_is_normal_002() -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(norm="batch")
    w = g.model[10].conv_block[1].weight
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    up = g.model[19].weight
    assert abs(up.std() - 0.02) < 1e-3
    assert torch.all(g.model[26].bias == 0)
    bn = g.model[10].conv_block[2]
    assert abs(bn.weight.mean() - 1) < 0.01 and abs(bn.weight.std() - 0.02) < 0.01 and torch.all(bn.bias == 0)

    d = PatchDiscriminator()
    assert abs(d.model[8].weight.std() - 0.02) < 1e-3
    assert all(torch.all(m.bias == 0) for m in d.model if isinstance(m, nn.Conv2d))
