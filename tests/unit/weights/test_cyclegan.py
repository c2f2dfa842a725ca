"""Official pytorch-CycleGAN-and-pix2pix weights load into ganzoo's CycleGAN and pix2pix nets and give the same
outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganzoo.errors import CheckpointError
from ganzoo.nets.unet import UnetGenerator
from ganzoo.weights.cyclegan import discriminator_from_official, generator_from_official
from tests.builders import randomise
from tests.references.cyclegan import RefDiscriminator, RefGenerator, RefUnetGenerator, save_like_reference


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


@pytest.mark.parametrize(
    ("norm", "num_downs", "prefix", "stale_stats"),
    [
        ("batch", 5, "", False),
        ("batch", 7, "module.", False),
        ("instance", 6, "", True),
        ("instance", 5, "module.", True),
    ],
)
def test_official_pix2pix_unet_weights_give_identical_images(
    tmp_path: Path, norm: str, num_downs: int, prefix: str, stale_stats: bool
) -> None:
    ref = randomise(RefUnetGenerator(3, 1, num_downs, ngf=4, norm=norm))
    path = save_like_reference(ref, tmp_path / "latest_net_G.pth", prefix, stale_stats)
    ours = generator_from_official(path)
    assert isinstance(ours, UnetGenerator)
    assert (ours.in_channels, ours.out_channels, ours.ngf, ours.num_downs) == (3, 1, 4, num_downs)
    assert (ours.norm, ours.use_dropout) == (norm, True)
    x = torch.rand(2, 3, 2**num_downs, 2 ** (num_downs + 1)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), ref.eval()(x))
        # Training mode (the official test protocol's), the same dropout masks from the same seed.
        ours.train(), ref.train()
        torch.manual_seed(1)
        trained_mode = ours(x[:1])
        torch.manual_seed(1)
        assert torch.equal(trained_mode, ref(x[:1]))


def test_unet_kwargs_override_and_wrong_sizes_are_checkpoint_errors() -> None:
    state = RefUnetGenerator(1, 3, 6, ngf=4, dropout=False).state_dict()
    assert not generator_from_official(state, use_dropout=False).use_dropout
    with pytest.raises(CheckpointError, match="does not fit ganzoo's pix2pix UnetGenerator layout") as error:
        generator_from_official(state, num_downs=5)
    assert "\n" not in str(error.value) and "pass the sizes it was trained with" in str(error.value)
    del state["model.model.3.weight"]
    with pytest.raises(CheckpointError, match="no up conv model.model.3.weight"):
        generator_from_official(state)


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


def test_wrong_file_for_a_pix2pix_generator_is_one_line(tmp_path: Path) -> None:
    # pix2pix's conditional discriminator (latest_net_D.pth): 6 input channels, batch norm.
    d = save_like_reference(RefDiscriminator(6, ndf=4, norm="batch"), tmp_path / "latest_net_D.pth")
    with pytest.raises(CheckpointError, match="not an official CycleGAN or pix2pix generator") as error:
        generator_from_official(d)
    message = str(error.value)
    assert str(d) in message and "\n" not in message and "use discriminator_from_official" in message
    u = save_like_reference(RefUnetGenerator(3, 3, 5, ngf=2), tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match="use generator_from_official"):
        discriminator_from_official(u)
