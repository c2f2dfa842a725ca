"""pix2pix's U-Net: the reference's parameter counts, keys and outputs (eval mode and the official test mode),
its skip connections, dropout positions, size checks and init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.cyclegan import PatchDiscriminator
from ganzoo.nets.unet import UnetGenerator, UnetSkipConnectionBlock
from tests.builders import randomise
from tests.references.cyclegan import RefUnetGenerator


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def level_path(level: int) -> str:
    """The module name of U-Net level ``level`` (1: the outermost block)."""
    return "model" + (".model.1" if level >= 2 else "") + ".model.3" * max(0, level - 2)


def test_parameter_counts_match_the_reference() -> None:
    """pix2pix's defaults: unet_256 / unet_128 at ngf=64 with batch norm, and the conditional 70x70 PatchGAN."""
    assert num_params(UnetGenerator(3, 3, num_downs=8, ngf=64, norm="batch")) == 54_413_955
    assert num_params(UnetGenerator(3, 3, num_downs=7, ngf=64, norm="batch")) == 41_828_995
    assert num_params(RefUnetGenerator(3, 3, num_downs=8, ngf=64)) == 54_413_955
    # D sees input and output side by side: 6 channels; batch norm drops the biases of the middle convs.
    assert num_params(PatchDiscriminator(in_channels=6, ndf=64, n_layers=3, norm="batch")) == 2_768_705
    # unet_256 has one more middle level at 8 ngf = 512: a 4x4 conv 512 -> 512 and a transposed one from the
    # doubled skip channels 1024 -> 512 (no biases under batch norm), and two BatchNorms of 512.
    level = 512 * 512 * 16 + 1024 * 512 * 16 + 2 * (2 * 512)
    assert level == 54_413_955 - 41_828_995


@pytest.mark.parametrize(
    ("num_downs", "norm", "dropout"), [(8, "batch", True), (7, "instance", True), (5, "batch", False)]
)
def test_keys_and_shapes_are_the_references(num_downs: int, norm: str, dropout: bool) -> None:
    ours = UnetGenerator(3, 2, num_downs=num_downs, ngf=4, norm=norm, use_dropout=dropout).state_dict()
    ref = RefUnetGenerator(3, 2, num_downs, ngf=4, norm=norm, dropout=dropout).state_dict()
    assert list(ours) == list(ref)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}
    assert ours["model.model.0.weight"].shape == (4, 3, 4, 4)
    assert ours["model.model.3.weight"].shape == (8, 2, 4, 4)  # transposed: (2 ngf in, out channels)
    assert ("model.model.0.bias" in ours) == (norm == "instance") and "model.model.3.bias" in ours
    assert (
        f"{level_path(num_downs)}.model.1.weight" in ours and f"{level_path(num_downs + 1)}.model.1.weight" not in ours
    )


def run_official_test_mode(net: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The official test script without --eval: train mode, one image at a time, ``seed`` before each."""
    net.train()
    outs = []
    for image in x:
        torch.manual_seed(seed)
        outs.append(net(image[None]))
    return torch.cat(outs)


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize(("num_downs", "size"), [(6, 64), (8, 256)])
def test_reference_weights_give_bitwise_identical_outputs(norm: str, num_downs: int, size: int) -> None:
    ref = randomise(RefUnetGenerator(3, 2, num_downs, ngf=4, norm=norm))
    ours = UnetGenerator(3, 2, num_downs=num_downs, ngf=4, norm=norm)
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(3, 3, size, size) * 2 - 1
    with torch.no_grad():
        eval_out = ours.eval()(x)
        assert torch.equal(eval_out, ref.eval()(x))
        assert eval_out.shape == (3, 2, size, size) and eval_out.abs().max() <= 1

        # Dropout draws its masks in the same order from the same seed, batch norms use each image's statistics.
        test_out = run_official_test_mode(ours, x, seed=3)
        assert torch.equal(test_out, run_official_test_mode(ref, x, seed=3))
        assert not torch.equal(test_out, eval_out)
        # Both moved their running statistics alike, as the official script does.
        torch.testing.assert_close(ours.state_dict(), ref.state_dict(), rtol=0, atol=0)
        assert not torch.equal(test_out, run_official_test_mode(ours, x, seed=4))  # the masks matter


def test_skip_connection_carries_the_activated_input_and_leaves_the_input_alone() -> None:
    block = UnetSkipConnectionBlock(4, 8, norm="instance")  # innermost
    x = torch.randn(2, 4, 8, 8)
    before = x.clone()
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, 8, 8, 8)
    assert torch.equal(y[:, :4], nn.functional.leaky_relu(before, 0.2)) and not torch.equal(y[:, :4], before)
    assert torch.equal(x, before)


@pytest.mark.parametrize(("num_downs", "use_dropout"), [(8, True), (7, True), (6, True), (5, True), (8, False)])
def test_dropout_sits_in_the_middle_blocks_at_8_ngf(num_downs: int, use_dropout: bool) -> None:
    g = UnetGenerator(num_downs=num_downs, ngf=2, use_dropout=use_dropout)
    found = [name for name, m in g.named_modules() if isinstance(m, nn.Dropout)]
    levels = range(5, num_downs) if use_dropout else range(0)
    assert sorted(found) == sorted(f"{level_path(level)}.model.7" for level in levels)
    assert all(m.p == 0.5 for m in g.modules() if isinstance(m, nn.Dropout))
    for level in levels:
        block = g.get_submodule(level_path(level))
        assert block.model[1].in_channels == block.model[1].out_channels == 16  # 8 ngf


def test_training_mode_runs_backward_through_every_weight() -> None:
    g = UnetGenerator(2, 1, num_downs=5, ngf=4).train()
    y = g(torch.rand(2, 2, 32, 64) * 2 - 1)
    y.square().mean().backward()
    assert y.shape == (2, 1, 32, 64)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


@pytest.mark.parametrize(("num_downs", "shape", "hint"), [(5, (30, 32), "32x32"), (8, (128, 128), "256x256")])
def test_sides_not_multiples_of_2_to_the_num_downs_are_config_errors(num_downs: int, shape, hint: str) -> None:
    g = UnetGenerator(ngf=2, num_downs=num_downs)
    with pytest.raises(ConfigError, match=f"num_downs={num_downs} needs image sides that are multiples of") as e:
        g(torch.zeros(1, 3, *shape))
    assert f"e.g. {hint}" in str(e.value) and "\n" not in str(e.value)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="UnetGenerator num_downs=4 must be an integer >= 5"):
        UnetGenerator(num_downs=4)
    with pytest.raises(ConfigError, match="UnetGenerator norm='group' is not supported: use norm=instance"):
        UnetGenerator(norm="group")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ngf=0"):
        UnetGenerator(ngf=0)


def test_init_is_normal_002_and_norms_follow_the_choice() -> None:
    torch.manual_seed(0)
    g = UnetGenerator(norm="batch", num_downs=7)
    w = g.get_submodule(level_path(4)).model[1].weight
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    assert torch.all(g.model.model[3].bias == 0)
    bn = g.get_submodule(level_path(3)).model[2]
    assert isinstance(bn, nn.BatchNorm2d) and abs(bn.weight.mean() - 1) < 0.01 and torch.all(bn.bias == 0)
    assert g.model.model[0].bias is None
    gi = UnetGenerator(norm="instance", num_downs=5, ngf=2)
    norm = gi.get_submodule(level_path(2)).model[2]
    assert isinstance(norm, nn.InstanceNorm2d) and not norm.affine and not norm.track_running_stats
    assert (gi.in_channels, gi.out_channels, gi.ngf, gi.num_downs, gi.norm, gi.use_dropout) == (
        3,
        3,
        2,
        5,
        "instance",
        True,
    )
