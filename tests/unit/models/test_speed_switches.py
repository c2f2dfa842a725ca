"""``model.channels_last`` and ``model.compile``: the same training, in another memory layout or compiled."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.models.biggan import BigGAN
from ganzoo.models.dcgan import DCGAN
from ganzoo.nets.biggan import BigGANDiscriminator, BigGANGenerator
from tests.builders import quiet_trainer, tiny_dcgan


class Recorder(Callback):
    """Each step: whether the batch reached the model in NHWC, and the step's losses."""

    def __init__(self) -> None:
        self.channels_last: list[bool] = []
        self.losses: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.channels_last.append(batch[0].is_contiguous(memory_format=torch.channels_last))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.losses.append({k: float(v) for k, v in pl_module.step_values.items() if "loss" in k})


def _fit(model: L.LightningModule, batch_size: int, tmp_path: Path) -> Recorder:
    images = torch.rand(48, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    data = DataLoader(TensorDataset(images, torch.arange(48) % 3), batch_size=batch_size)
    recorder = Recorder()
    L.seed_everything(0)
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[recorder])
    trainer.fit(model, data)
    return recorder


def _dcgan(**switches) -> DCGAN:
    torch.manual_seed(0)
    return tiny_dcgan(32, 3, **switches)


def _biggan(**switches) -> BigGAN:
    torch.manual_seed(0)
    generator = BigGANGenerator(resolution=32, channels=3, ch=4, dim_z=8, n_classes=3)
    discriminator = BigGANDiscriminator(resolution=32, channels=3, ch=4, n_classes=3)
    return BigGAN(generator, discriminator, batch_size=4, num_D_steps=2, ema=True, use_ema=True, **switches)


def _assert_same_training(a: Recorder, b: Recorder) -> None:
    """The first step (same weights) gives the same losses; later ones differ only by float rounding that Adam's
    normalized updates carry into the weights."""
    assert a.losses[0].keys() == b.losses[0].keys() and a.losses[0]
    for key in a.losses[0]:
        assert b.losses[0][key] == pytest.approx(a.losses[0][key], rel=1e-5, abs=1e-6), key
        assert b.losses[-1][key] == pytest.approx(a.losses[-1][key], rel=2e-2, abs=1e-3), key


def test_channels_last_trains_the_same_in_nhwc(tmp_path: Path) -> None:
    for build, batch in ((_dcgan, 8), (_biggan, 8)):
        plain, nhwc = build(), build(channels_last=True)
        runs = _fit(plain, batch, tmp_path), _fit(nhwc, batch, tmp_path)
        assert not any(runs[0].channels_last) and all(runs[1].channels_last)  # batches reach the step in NHWC
        conv_weights = [p for p in nhwc.parameters() if p.dim() == 4]
        assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
        _assert_same_training(*runs)


def test_compile_trains_the_same_with_the_same_checkpoint_keys(tmp_path: Path) -> None:
    plain, compiled = _dcgan(), _dcgan(compile=True)
    runs = _fit(plain, 8, tmp_path), _fit(compiled, 8, tmp_path)
    assert compiled.generator._compiled_call_impl is not None and compiled.discriminator._compiled_call_impl
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # checkpoints stay interchangeable
    _assert_same_training(*runs)


def _cyclegan() -> L.LightningModule:
    from functools import partial

    from ganzoo.models.cyclegan import CycleGAN
    from ganzoo.nets.cyclegan import PatchDiscriminator, ResnetGenerator

    torch.manual_seed(0)
    generator = partial(ResnetGenerator, in_channels=3, out_channels=3, ngf=4, n_blocks=1)
    return CycleGAN(generator, partial(PatchDiscriminator, in_channels=3, ndf=4, n_layers=2), pool_size=2)


def _pix2pix() -> L.LightningModule:
    from tests.builders import tiny_pix2pix

    return tiny_pix2pix(channels=3, ngf=4, ndf=4, n_layers=2)


@pytest.mark.parametrize(
    "build", [_dcgan, _cyclegan, _pix2pix], ids=["dcgan", "cyclegan", "pix2pix"]
)  # BigGAN: tests/test_biggan.py
def test_bf16_mixed_precision_trains_with_float32_weights(build, tmp_path: Path) -> None:
    model = build()
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    # (image, label) batches; CycleGAN and pix2pix take (image A, image B).
    second = torch.arange(16) % 3 if isinstance(model, DCGAN | BigGAN) else images.flip(0)
    data = DataLoader(TensorDataset(images, second), batch_size=8)
    recorder = Recorder()
    trainer = quiet_trainer(tmp_path, precision="bf16-mixed", callbacks=[recorder])
    trainer.fit(model, data)
    assert len(recorder.losses) == 2 and all(math.isfinite(v) for step in recorder.losses for v in step.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_compile_takes_a_torch_compile_mode_and_refuses_other_values() -> None:
    from ganzoo.errors import ConfigError
    from ganzoo.models.base import compile_mode

    settings = (False, None, True, "reduce-overhead")
    assert [compile_mode(v) for v in settings] == [None, None, "default", "reduce-overhead"]
    assert _dcgan(compile="max-autotune").compile_networks == "max-autotune"
    with pytest.raises(ConfigError, match=r"model.compile='fast' is not a torch.compile setting: .*reduce-overhead"):
        _dcgan(compile="fast")
