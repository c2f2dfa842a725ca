"""pytorch/examples' dcgan weights load into ganzoo's nets and give the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ganzoo.errors import CheckpointError
from ganzoo.weights.dcgan import discriminator_from_reference, generator_from_reference
from tests.builders import randomise
from tests.references.dcgan import reference_netD, reference_netG


@pytest.mark.parametrize("data_parallel", [False, True])
def test_reference_generator_weights_give_identical_images(tmp_path: Path, data_parallel: bool) -> None:
    ref = randomise(reference_netG(nz=100, ngf=16, nc=3), std=0.05)
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
    ref = randomise(reference_netD(ndf=16, nc=1), std=0.05)
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
