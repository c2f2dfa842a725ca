"""What many tests build: a quiet CPU Trainer, tiny models, networks with random weights; reading PNGs back."""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torchvision.io import decode_png, read_file

from ganzoo.models.biggan import BigGAN
from ganzoo.models.cyclegan import CycleGAN
from ganzoo.models.dcgan import DCGAN
from ganzoo.models.pix2pix import Pix2Pix
from ganzoo.nets.biggan import BigGANDiscriminator, BigGANGenerator
from ganzoo.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from ganzoo.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganzoo.nets.unet import UnetGenerator


def quiet_trainer(root: Path, max_steps: int = 2, **settings: Any) -> L.Trainer:
    """A real Lightning Trainer on the CPU that writes nothing but what ``settings`` ask for: no logger, no
    checkpoints, no progress bar or model summary; its files (if any) go under ``root``."""
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(max_steps=max_steps, default_root_dir=root, **{**defaults, **settings})


def tiny_dcgan(image_size: int = 16, channels: int = 1, **options: Any) -> DCGAN:
    """A DCGAN with 8-dimensional latents and 4 base channels: a training step takes milliseconds."""
    return DCGAN(
        DCGANGenerator(image_size, channels, nz=8, ngf=4), DCGANDiscriminator(image_size, channels, ndf=4), **options
    )


def randomise(net: nn.Module, std: float = 0.1, seed: int = 0) -> nn.Module:
    """Random weights, biases and batch-norm statistics (``net`` in eval mode), so that a weight mapping that
    swaps or drops a tensor cannot give the same outputs by accident."""
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.normal_(m.weight, 1, 0.2)
            nn.init.normal_(m.bias, 0, 0.2)
        elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0, std)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0, std)
    return net.eval()


def tiny_biggan(num_classes: int = 3, image_size: int = 32, **options: Any) -> BigGAN:
    """A class-conditional grey BigGAN (32 px is its smallest resolution) with 4 base channels, 16-dimensional
    latents, no attention and one D step of 2 images per iteration; the same weights on every call."""
    torch.manual_seed(0)
    common = {"resolution": image_size, "channels": 1, "ch": 4, "n_classes": num_classes, "attention": "0"}
    generator = BigGANGenerator(**common, dim_z=16, shared=False, init="N02")
    discriminator = BigGANDiscriminator(**common, init="N02")
    return BigGAN(generator, discriminator, **{"batch_size": 2, "num_D_steps": 1, **options})


def tiny_cyclegan(
    channels: int = 1, ngf: int = 4, n_blocks: int = 1, ndf: int = 4, n_layers: int = 1, **options: Any
) -> CycleGAN:
    """A CycleGAN of ResNet generators with ``ngf`` base channels and ``n_blocks`` residual blocks and PatchGANs of
    ``ndf`` channels and ``n_layers`` layers, for ``channels``-channel images of any size divisible by 4; the same
    weights on every call."""
    torch.manual_seed(0)
    return CycleGAN(
        functools.partial(ResnetGenerator, channels, channels, ngf=ngf, n_blocks=n_blocks),
        functools.partial(PatchDiscriminator, channels, ndf=ndf, n_layers=n_layers),
        **options,
    )


def tiny_pix2pix(
    channels: int = 1, num_downs: int = 5, ngf: int = 4, ndf: int = 4, n_layers: int = 1, **options: Any
) -> Pix2Pix:
    """A pix2pix of a batch-norm U-Net with ``num_downs`` levels and ``ngf`` base channels (dropout from level 5 on)
    and a batch-norm PatchGAN of ``ndf`` channels and ``n_layers`` layers on (input, output) pairs, for
    ``channels``-channel images whose sides are multiples of ``2 ** num_downs``; the same weights on every call."""
    torch.manual_seed(0)
    return Pix2Pix(
        functools.partial(UnetGenerator, channels, channels, num_downs=num_downs, ngf=ngf),
        functools.partial(PatchDiscriminator, 2 * channels, ndf=ndf, n_layers=n_layers, norm="batch"),
        **options,
    )


def assert_resume_is_exact(uninterrupted: Path, interrupted: Path, resumed: Path) -> None:
    """The checkpoint ``resumed`` (a run continued from ``interrupted``) holds the weights and Adam moments of
    ``uninterrupted`` bit for bit, and ``interrupted`` really stopped earlier (its weights differ)."""
    from ganzoo.checkpoint import load_checkpoint_file

    full, first, again = (load_checkpoint_file(path) for path in (uninterrupted, interrupted, resumed))
    assert again["global_step"] == full["global_step"] > first["global_step"]
    assert full["state_dict"].keys() == again["state_dict"].keys()
    for name, value in full["state_dict"].items():
        assert torch.equal(value, again["state_dict"][name]), f"{name} differs after resuming"
    moments = [
        [state["exp_avg_sq"] for optimizer in checkpoint["optimizer_states"] for state in optimizer["state"].values()]
        for checkpoint in (full, again)
    ]
    assert moments[0] and len(moments[0]) == len(moments[1])
    assert all(torch.equal(x, y) for x, y in zip(*moments, strict=True))
    name = next(key for key in full["state_dict"] if key.endswith("weight"))
    assert not torch.equal(first["state_dict"][name], full["state_dict"][name])


def read_png(path: Path) -> torch.Tensor:
    """A PNG file's pixels: uint8 (C, H, W)."""
    return decode_png(read_file(str(path)))


def read_rows(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a run's ``csv/metrics.csv``."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def steps_of(rows: list[dict[str, str]], key: str) -> list[int]:
    """The steps of the rows that hold a value of ``key``."""
    return [int(r["step"]) for r in rows if r.get(key)]
