"""The official pytorch-CycleGAN-and-pix2pix networks (ResNet and U-Net generators, PatchGAN discriminator), the
way it saves weights, and its learning-rate rule, written out from its code's module names and documented
formulas."""

from __future__ import annotations

import collections
from pathlib import Path

import torch
from torch import nn


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


class RefUnetBlock(nn.Module):
    """The reference's U-Net skip-connection block in its own form: one ``model`` holding the next block, and a
    forward that concatenates ``x`` with ``model(x)`` after an in-place LeakyReLU has overwritten ``x``."""

    def __init__(self, outer: int, inner: int, nc_in: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, norm: str = "batch", dropout: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.outermost = outermost
        b = norm == "instance"
        downconv = nn.Conv2d(nc_in or outer, inner, 4, 2, 1, bias=b)
        if outermost:
            layers = [downconv, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif sub is None:
            upconv = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=b)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, ref_norm(norm, outer)]
        else:
            upconv = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=b)
            layers = [nn.LeakyReLU(0.2, True), downconv, ref_norm(norm, inner), sub,
                      nn.ReLU(True), upconv, ref_norm(norm, outer)]  # fmt: skip
            layers += [nn.Dropout(0.5)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # x is LeakyReLU(x) by the time cat reads it


class RefUnetGenerator(nn.Module):
    """The reference's UnetGenerator (``unet_256``: num_downs=8, ``unet_128``: 7), built innermost first."""

    def __init__(self, nc_in: int, nc_out: int, num_downs: int, ngf: int, norm: str = "batch", dropout: bool = True):
        super().__init__()
        block = RefUnetBlock(8 * ngf, 8 * ngf, norm=norm)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(8 * ngf, 8 * ngf, sub=block, norm=norm, dropout=dropout)
        block = RefUnetBlock(4 * ngf, 8 * ngf, sub=block, norm=norm)
        block = RefUnetBlock(2 * ngf, 4 * ngf, sub=block, norm=norm)
        block = RefUnetBlock(ngf, 2 * ngf, sub=block, norm=norm)
        self.model = RefUnetBlock(nc_out, ngf, nc_in, block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


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


def official_lambda_rule(epoch: int, n_epochs: int, n_epochs_decay: int, epoch_count: int) -> float:
    # The official formula, written out from its description: constant, then linear to zero.
    return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)
