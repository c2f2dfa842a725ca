"""Official pytorch-CycleGAN-and-pix2pix weights load into ganzoo's CycleGAN nets and give the same outputs."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch
from torch import nn

from ganzoo.errors import CheckpointError
from ganzoo.weights.cyclegan import discriminator_from_official, generator_from_official


def ref_norm(kind: str, channels: int) -> nn.Module:
    """The reference's norm_layer: instance without affine or running stats, or affine batch norm."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.BatchNorm2d(channels, affine=True)


class RefBlock(nn.Module):
    """The reference's residual block, written out from its module names (``conv_block`` indices)."""

    def __init__(self, dim: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), ref_norm(norm, dim), nn.ReLU(True)]
        layers += [nn.Dropout(0.5)] if dropout else []
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), ref_norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class RefGenerator(nn.Module):
    """The reference's ResnetGenerator (reflect padding, transposed-conv upsampling) as one ``model``."""

    def __init__(self, nc_in: int, nc_out: int, ngf: int, blocks: int, norm: str = "instance", dropout: bool = False):
        super().__init__()
        b = norm == "instance"
        self.model = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(nc_in, ngf, 7, bias=b), ref_norm(norm, ngf), nn.ReLU(True),
            nn.Conv2d(ngf, 2 * ngf, 3, 2, 1, bias=b), ref_norm(norm, 2 * ngf), nn.ReLU(True),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1, bias=b), ref_norm(norm, 4 * ngf), nn.ReLU(True),
            *[RefBlock(4 * ngf, norm, dropout) for _ in range(blocks)],
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1, bias=b), ref_norm(norm, 2 * ngf), nn.ReLU(True),
            nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1, bias=b), ref_norm(norm, ngf), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, nc_out, 7), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RefDiscriminator(nn.Module):
    """The reference's NLayerDiscriminator with n_layers=3 and no sigmoid."""

    def __init__(self, nc_in: int, ndf: int, norm: str = "instance") -> None:
        super().__init__()
        b = norm == "instance"
        self.model = nn.Sequential(
            nn.Conv2d(nc_in, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=b), ref_norm(norm, 2 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=b), ref_norm(norm, 4 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * ndf, 8 * ndf, 4, 1, 1, bias=b), ref_norm(norm, 8 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(8 * ndf, 1, 4, 1, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def randomise(net: nn.Module) -> nn.Module:
    """Random weights, biases and running statistics, so that a wrong mapping could not go unnoticed."""
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.normal_(m.weight, 1, 0.2)
            nn.init.normal_(m.bias, 0, 0.2)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0, 0.1)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0, 0.1)
    return net.eval()


def save_like_reference(net: nn.Module, path: Path, prefix: str = "", stale_stats: bool = False) -> Path:
    """``torch.save(net.state_dict(), path)``, optionally as DataParallel would name it, or with the
    running statistics that InstanceNorm layers of older PyTorch versions left in the file."""
    state = collections.OrderedDict((prefix + k, v) for k, v in net.state_dict().items())
    if stale_stats:
        for name, m in net.named_modules():
            if isinstance(m, nn.InstanceNorm2d):
                state[f"{prefix}{name}.running_mean"] = torch.zeros(m.num_features)
                state[f"{prefix}{name}.running_var"] = torch.ones(m.num_features)
                state[f"{prefix}{name}.num_batches_tracked"] = torch.tensor(7)
    torch.save(state, path)
    return path


@pytest.mark.parametrize(("prefix", "stale_stats"), [("", False), ("module.", False), ("", True), ("module.", True)])
def test_official_generator_weights_give_identical_images(tmp_path: Path, prefix: str, stale_stats: bool) -> None:
    ref = randomise(RefGenerator(3, 3, ngf=8, blocks=9))
    path = save_like_reference(ref, tmp_path / "latest_net_G_A.pth", prefix, stale_stats)
    if stale_stats:
        assert any(k.endswith("model.2.running_mean") for k in torch.load(path, weights_only=True))

    ours = generator_from_official(path).eval()
    assert (ours.in_channels, ours.out_channels, ours.ngf, ours.n_blocks) == (3, 3, 8, 9)
    assert (ours.norm, ours.use_dropout, ours.upsample) == ("instance", False, "transpose")
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("norm", "dropout", "blocks"), [("batch", False, 6), ("instance", True, 6), ("batch", True, 2)]
)
def test_sizes_norm_and_dropout_are_read_off_the_weights(norm: str, dropout: bool, blocks: int) -> None:
    ref = randomise(RefGenerator(1, 3, ngf=4, blocks=blocks, norm=norm, dropout=dropout))
    ours = generator_from_official(ref.state_dict()).eval()
    assert (ours.in_channels, ours.out_channels, ours.ngf, ours.n_blocks) == (1, 3, 4, blocks)
    assert (ours.norm, ours.use_dropout) == (norm, dropout)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_official_discriminator_weights_give_identical_logits(tmp_path: Path, norm: str) -> None:
    ref = randomise(RefDiscriminator(3, ndf=8, norm=norm))
    path = save_like_reference(ref, tmp_path / "latest_net_D_A.pth", "module.", stale_stats=True)
    ours = discriminator_from_official(path).eval()
    assert (ours.in_channels, ours.ndf, ours.n_layers, ours.norm) == (3, 8, 3, norm)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)


def test_kwargs_override_and_wrong_sizes_are_checkpoint_errors() -> None:
    state = RefGenerator(3, 3, ngf=4, blocks=2).state_dict()
    assert generator_from_official(state, use_dropout=False).n_blocks == 2
    with pytest.raises(CheckpointError, match="does not fit ganzoo's CycleGAN ResnetGenerator layout"):
        generator_from_official(state, ngf=8)


class TrainingOptions:
    """Stands for any pickled Python object (the reference's option namespace, say) in a weights file."""

    lr = 2e-4


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7), "opt": TrainingOptions()}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="not a plain PyTorch state dict"):
        generator_from_official(tmp_path / "obj.pth")
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        generator_from_official(tmp_path / "meta.pth")


def test_foreign_or_missing_files_are_refused(tmp_path: Path) -> None:
    d = save_like_reference(RefDiscriminator(3, ndf=4), tmp_path / "latest_net_D_A.pth")
    with pytest.raises(CheckpointError, match="use discriminator_from_official"):
        generator_from_official(d)
    g = save_like_reference(RefGenerator(3, 3, ngf=4, blocks=1), tmp_path / "latest_net_G_A.pth")
    with pytest.raises(CheckpointError, match="use generator_from_official"):
        discriminator_from_official(g)
    with pytest.raises(CheckpointError, match="does not exist"):
        generator_from_official(tmp_path / "nope.pth")
