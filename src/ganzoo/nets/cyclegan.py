"""CycleGAN generator and discriminator (Zhu et al. 2017), sized like junyanz/pytorch-CycleGAN-and-pix2pix.

Both keep their layers in one ``nn.Sequential`` named ``model`` at the reference's indices, and the
residual blocks keep theirs in ``conv_block``, so the reference's ``*_net_G_A.pth`` / ``*_net_D_A.pth``
(and the published pretrained generators) load with ``load_state_dict`` unchanged; see
:mod:`ganzoo.weights.cyclegan` for the stale-key clean-up that some of those files need.

Layout of :class:`ResnetGenerator` (``upsample="transpose"``, ``B = n_blocks``)::

    model.0      ReflectionPad2d(3)
    model.1-3    Conv 7x7 in -> ngf, norm, ReLU
    model.4-6    Conv 3x3 s2 ngf -> 2 ngf, norm, ReLU
    model.7-9    Conv 3x3 s2 2 ngf -> 4 ngf, norm, ReLU
    model.10 ... model.(9+B)   ResnetBlock(4 ngf), each ``conv_block`` = pad, conv, norm, ReLU, [Dropout], pad, conv, norm
    next 3+3     ConvTranspose 3x3 s2 4 ngf -> 2 ngf, norm, ReLU; 2 ngf -> ngf, norm, ReLU
    last 3       ReflectionPad2d(3), Conv 7x7 ngf -> out (always with bias), Tanh

So for 9 blocks the convs are ``model.{1,4,7,19,22,26}`` and the blocks ``model.10`` to ``model.18``.
``upsample="resize"`` replaces each transposed conv by nearest x2 upsampling, ReflectionPad2d(1) and a
3x3 conv (three modules instead of one), which avoids checkerboard artefacts but shifts the later indices.

With ``norm="instance"`` (the CycleGAN default) norms are ``InstanceNorm2d(affine=False,
track_running_stats=False)`` and have no state, and the convs before them carry biases; with
``norm="batch"`` they are ``BatchNorm2d(affine=True)`` and those convs have no bias.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.init import init_normal

Norm = Literal["instance", "batch"]
Upsample = Literal["transpose", "resize"]


def norm_layer(norm: str, channels: int, net: str = "CycleGAN") -> nn.Module:
    """The reference's normalisation for ``channels`` maps: ``"instance"`` is ``InstanceNorm2d`` without affine
    parameters or running statistics, ``"batch"`` an affine ``BatchNorm2d``. Convs followed by one carry a bias
    only with ``"instance"``. A ConfigError, naming ``net``, for any other name."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    raise ConfigError(f"{net} norm={norm!r} is not supported: use norm=instance or norm=batch")


def check_positive(name: str, value: int, example: int, minimum: int = 1, net: str = "CycleGAN") -> None:
    """A ConfigError, naming ``net`` and the argument ``name``, unless ``value`` is an integer >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{net} {name}={value!r} must be an integer >= {minimum}: e.g. {name}={example}")


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``: two reflection-padded 3x3 convs keeping ``dim`` channels and the spatial size.

    Input and output: (N, dim, H, W).
    """

    def __init__(self, dim: int, norm: Norm = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, padding=0, bias=bias),
            norm_layer(norm, dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Image-to-image translator: two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings.

    Args:
        in_channels: input image channels.
        out_channels: output image channels.
        ngf: width of the first conv; the residual blocks run at ``4 * ngf``.
        n_blocks: residual blocks (the reference's ``resnet_9blocks`` for 256 px, ``resnet_6blocks`` for 128 px).
        norm: ``"instance"`` (CycleGAN's default) or ``"batch"``.
        use_dropout: ``Dropout(0.5)`` between the two convs of every block (off in CycleGAN).
        upsample: ``"transpose"`` (the reference's ConvTranspose2d) or ``"resize"`` (nearest x2 + conv).

    Input: (N, in_channels, H, W) in [-1, 1], H and W multiples of 4 (and at least 4).
    Output: (N, out_channels, H, W) in [-1, 1].
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: Norm = "instance",
        use_dropout: bool = False,
        upsample: Upsample = "transpose",
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels, 3)
        check_positive("out_channels", out_channels, 3)
        check_positive("ngf", ngf, 64)
        check_positive("n_blocks", n_blocks, 9, minimum=0)
        norm_layer(norm, 1)  # validates the name
        if upsample not in ("transpose", "resize"):
            raise ConfigError(f"CycleGAN upsample={upsample!r} is not supported: use upsample=transpose or resize")
        self.in_channels, self.out_channels, self.ngf, self.n_blocks = in_channels, out_channels, ngf, n_blocks
        #: Image sides must be multiples of this (two stride-2 convs down, two upsamplings back).
        self.size_multiple = 4
        self.norm, self.use_dropout, self.upsample = norm, use_dropout, upsample
        bias = norm == "instance"

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, padding=0, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        width = ngf
        for _ in range(2):
            layers += [
                nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, width * 2),
                nn.ReLU(True),
            ]
            width *= 2
        layers += [ResnetBlock(width, norm, use_dropout) for _ in range(n_blocks)]
        for _ in range(2):
            if upsample == "transpose":
                layers.append(
                    nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
                )
            else:
                layers += [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.ReflectionPad2d(1),
                    nn.Conv2d(width, width // 2, 3, padding=0, bias=bias),
                ]
            layers += [norm_layer(norm, width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % 4 or width % 4 or height < 4 or width < 4:
            raise ConfigError(
                f"ResnetGenerator needs image sides that are multiples of 4, got {height}x{width}: "
                "resize or crop the images to e.g. 256x256"
            )
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: one real/fake logit per overlapping patch (70x70 receptive field for ``n_layers=3``).

    Args:
        in_channels: input image channels.
        ndf: width of the first conv; each later stride-2 conv doubles it, up to ``8 * ndf``.
        n_layers: the reference's ``n_layers``: the first conv and ``n_layers - 1`` more have stride 2,
            then come two stride-1 convs (the last one gives 1 channel); 3 is the 70x70 PatchGAN.
        norm: ``"instance"`` (CycleGAN's default) or ``"batch"``; the first and last convs have no norm.

    Input: (N, in_channels, H, W) in [-1, 1]. Output: (N, 1, h, w) raw logits (no sigmoid; 30x30 for a
    256x256 input with ``n_layers=3``).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance") -> None:
        super().__init__()
        check_positive("in_channels", in_channels, 3)
        check_positive("ndf", ndf, 64)
        check_positive("n_layers", n_layers, 3, minimum=0)
        norm_layer(norm, 1)
        self.in_channels, self.ndf, self.n_layers, self.norm = in_channels, ndf, n_layers, norm
        bias = norm == "instance"

        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1) if n_layers else [0]:  # n_layers=0: one stride-1 conv at ndf
            stride = 2 if n < n_layers else 1
            out = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, out),
                nn.LeakyReLU(0.2, True),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
