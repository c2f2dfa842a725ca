"""pytorch/examples' dcgan weights load into ganzoo's nets and give the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ganzoo.errors import CheckpointError
from ganzoo.weights.dcgan import discriminator_from_reference, generator_from_reference


def reference_netG(nz: int, ngf: int, nc: int) -> nn.Module:
    """The reference generator at 64 px, written out layer by layer from its documented architecture."""
    net = nn.Module()
    net.main = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
    )  # fmt: skip
    return net


def reference_netD(ndf: int, nc: int) -> nn.Module:
    net = nn.Module()
    net.main = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )  # fmt: skip
    return net


def randomise(net: nn.Module) -> nn.Module:
    """Random weights and running statistics, so that a wrong mapping could not go unnoticed."""
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.normal_(m.weight, 1, 0.2)
            nn.init.normal_(m.bias, 0, 0.2)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0, 0.05)
    return net.eval()


@pytest.mark.parametrize("data_parallel", [False, True])
def test_reference_generator_weights_give_identical_images(tmp_path: Path, data_parallel: bool) -> None:
    ref = randomise(reference_netG(nz=100, ngf=16, nc=3))
    state = ref.state_dict()
    if data_parallel:  # the reference with --ngpu > 1 saves nn.DataParallel's keys
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, tmp_path / "netG_epoch_24.pth")

    ours = generator_from_reference(tmp_path / "netG_epoch_24.pth").eval()
    assert (ours.nz, ours.main[-2].out_channels) == (100, 3)
    z = torch.randn(5, 100, 1, 1)
    with torch.no_grad():
        assert torch.equal(ours(z), ref.main(z))


def test_reference_discriminator_weights_give_identical_scores(tmp_path: Path) -> None:
    ref = randomise(reference_netD(ndf=16, nc=1))
    torch.save(ref.state_dict(), tmp_path / "netD.pth")
    ours = discriminator_from_reference(tmp_path / "netD.pth").eval()
    x = torch.rand(5, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(ours(x)), ref.main(x).flatten(), atol=1e-6)


def test_foreign_weights_are_refused(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a pytorch/examples DCGAN state dict"):
        generator_from_reference(tmp_path / "other.pth")
    torch.save({"net": nn.Linear(2, 2)}, tmp_path / "pickled_module.pth")
    with pytest.raises(CheckpointError, match="not a plain PyTorch state dict"):
        generator_from_reference(tmp_path / "pickled_module.pth")
