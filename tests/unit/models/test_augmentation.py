"""``model.augment`` in every model: each image a discriminator sees (real and generated, D step and G step) goes
through the augmentation, a conditional pair gets one transform, and ADA's controller sees every model's D."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.models.base import GANModule
from tests.builders import quiet_trainer, tiny_biggan, tiny_cyclegan, tiny_dcgan, tiny_pix2pix


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    # Magnitudes in [0.1, 1]: the zeros of a cutout are the augmentation's, never the data's.
    g = torch.Generator().manual_seed(seed)
    magnitude = torch.rand(n, 1, size, size, generator=g) * 0.9 + 0.1
    return torch.where(torch.rand(n, 1, size, size, generator=g) < 0.5, -magnitude, magnitude)


def _loader(model: str) -> DataLoader:
    if model in ("dcgan", "biggan"):
        size = 16 if model == "dcgan" else 32
        return DataLoader(TensorDataset(_images(8, size, 0), torch.arange(8) % 3), batch_size=2)
    return DataLoader(TensorDataset(_images(8, 32, 1), _images(8, 32, 2)), batch_size=2)


BUILDERS: dict[str, Callable[..., GANModule]] = {
    "dcgan": tiny_dcgan,
    "biggan": tiny_biggan,
    "cyclegan": tiny_cyclegan,
    "pix2pix": tiny_pix2pix,
}


def _discriminators(model: GANModule) -> list[nn.Module]:
    names = ("discriminator", "discriminator_a", "discriminator_b")
    return [getattr(model, name) for name in names if isinstance(getattr(model, name, None), nn.Module)]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_discriminator_input_is_augmented(name: str, tmp_path: Path) -> None:
    model = BUILDERS[name](augment="diffaug", augment_options={"policy": "cutout"})
    seen: list[torch.Tensor] = []

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0].detach().clone())

    for discriminator in _discriminators(model):
        discriminator.register_forward_pre_hook(record)
    quiet_trainer(tmp_path, max_steps=2).fit(model, _loader(name))
    # Per iteration: DCGAN and pix2pix 3 D calls (real, fake; fake for G), BigGAN 2 (fake + real, fake for G),
    # CycleGAN 6 (2 for G, 2 x (real, fake) for the D step): every one of them augmented.
    assert len(seen) == 2 * {"dcgan": 3, "biggan": 2, "cyclegan": 6, "pix2pix": 3}[name]
    for images in seen:
        zeros = images == 0
        assert zeros.flatten(1).any(dim=1).all()  # a cutout in every image
        if name == "pix2pix":
            # (input, output) pairs: the cutout sits at the same place in both halves.
            assert torch.equal(zeros[:, :1], zeros[:, 1:])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_ada_controller_runs_in_every_model(name: str, tmp_path: Path) -> None:
    options = {"interval": 1, "kimg": 0.001, "p": 0.5}
    model = BUILDERS[name](augment="ada", augment_options=options)
    quiet_trainer(tmp_path, max_steps=2).fit(model, _loader(name))
    # 0.001 kimg: one adjustment moves p to 0 or 1, whichever way D's outputs on the real images sent it.
    assert float(model.augmentation.p) in (0.0, 1.0)
    assert {"train/ada_p", "train/ada_rt"} <= set(model.step_values)


def test_without_augmentation_the_model_has_none() -> None:
    model = tiny_dcgan()
    assert model.augmentation is None
    images = torch.rand(2, 1, 16, 16)
    assert model.augmented(images) is images
    assert "augmentation.p" not in model.state_dict()
    assert "augmentation.p" in tiny_dcgan(augment="ada").state_dict()
