"""pix2pix's U-Net generator (Isola et al. 2017), sized and laid out like junyanz/pytorch-CycleGAN-and-pix2pix.

The net is ``num_downs`` nested skip-connection blocks, one per resolution level. Each block keeps its layers in
one ``nn.Sequential`` named ``model`` at the reference's indices, with the next block inside it, so the
reference's ``latest_net_G.pth`` (and the published pretrained pix2pix generators such as
``facades_label2photo.pth``) load with ``load_state_dict`` unchanged; :mod:`ganzoo.weights.cyclegan` reads the
sizes off such a file.

Layout for ``D = num_downs`` levels; level ``k`` halves the side on the way down and doubles it on the way up::

    model                          level 1 (outermost): in -> ngf
      model.model.0                Conv 4x4 s2 in -> ngf
      model.model.1                level 2 block
      model.model.2-4              ReLU, ConvTranspose 4x4 s2 2 ngf -> out (always with bias), Tanh
    level 2 .. D-1 (middle), in its ``model``:
      0                            LeakyReLU(0.2)
      1-2                          Conv 4x4 s2 outer -> inner, norm
      3                            the next level's block
      4-6                          ReLU, ConvTranspose 4x4 s2 2 inner -> outer, norm
      7                            Dropout(0.5), in levels 5 .. D-1 only, with ``use_dropout``
    level D (innermost), in its ``model``:
      0-4                          LeakyReLU(0.2), Conv 4x4 s2 8 ngf -> 8 ngf, ReLU, ConvTranspose 8 ngf -> 8 ngf, norm

Widths (outer -> inner) are ngf -> 2 ngf at level 2, 2 ngf -> 4 ngf at level 3, 4 ngf -> 8 ngf at level 4 and
8 ngf -> 8 ngf below. So level 2's down conv is ``model.model.1.model.1.weight``, level 3's
``model.model.1.model.3.model.1.weight``, and so on: each level adds ``.model.3``. ``num_downs=8`` is the
reference's ``unet_256`` (a 256 px image reaches 1x1 at the bottom), 7 its ``unet_128``; levels 5 .. D-1 (the
``num_downs - 5`` middle blocks at ``8 ngf``) carry the dropout.

A middle or innermost block maps (N, outer, h, w) to (N, 2 outer, h, w): its input after the LeakyReLU,
concatenated along the channels with what its inner path makes of it. The outermost maps
(N, in_channels, H, W) to (N, out_channels, H, W) in [-1, 1].

Norms as in :mod:`ganzoo.nets.cyclegan`: with ``norm="batch"`` (pix2pix's default) affine ``BatchNorm2d`` and no
bias in the convs before them; with ``"instance"`` stateless ``InstanceNorm2d`` and biased convs. The
outermost down conv follows that rule too (the reference's), its up conv always has a bias.
"""

from __future__ import annotations

import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.cyclegan import Norm, check_positive, norm_layer
from ganzoo.nets.init import init_normal


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down conv, the next level (``submodule``), up conv, and a skip connection around them.

    Args:
        outer_channels: channels this level hands back up (the outermost: the output image's).
        inner_channels: channels of its down conv's output.
        in_channels: channels it takes (default ``outer_channels``; the outermost: the input image's).
        submodule: the next level's block; None makes this the innermost block.
        outermost: the top level: no skip connection, no activation before the down conv, Tanh at the end.
        norm: ``"batch"`` or ``"instance"``.
        use_dropout: ``Dropout(0.5)`` after the up path (middle blocks only).

    Input: (N, in_channels, h, w), h and w even. Output: (N, 2 * outer_channels, h, w), or for the outermost
    (N, outer_channels, h, w) in [-1, 1].
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        norm: Norm = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down = nn.Conv2d(in_channels or outer_channels, inner_channels, 4, stride=2, padding=1, bias=bias)
        layers: list[nn.Module]
        if outermost:
            if submodule is None:
                raise ConfigError("the outermost U-Net block needs a submodule: build the levels from the bottom up")
            up = nn.ConvTranspose2d(2 * inner_channels, outer_channels, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif submodule is None:
            up = nn.ConvTranspose2d(inner_channels, outer_channels, 4, stride=2, padding=1, bias=bias)
            # No norm after the down conv: at the bottom of unet_256 it sees 1x1 maps of a batch of one.
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(True), up, norm_layer(norm, outer_channels, "UnetGenerator")]
        else:
            up = nn.ConvTranspose2d(2 * inner_channels, outer_channels, 4, stride=2, padding=1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2),
                down,
                norm_layer(norm, inner_channels, "UnetGenerator"),
                submodule,
                nn.ReLU(True),
                up,
                norm_layer(norm, outer_channels, "UnetGenerator"),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The reference's block starts with an in-place LeakyReLU and returns cat([x, model(x)]): by the time the
        # concatenation reads x, the activation has overwritten it, so its skip connection carries LeakyReLU(x),
        # not the block's input. Trained weights expect that, so it is reproduced here without mutating the
        # caller's tensor: the activation once, then both paths from its result.
        h = self.model[0](x)
        out = h
        for layer in self.model[1:]:
            out = layer(out)
        return torch.cat([h, out], 1)


class UnetGenerator(nn.Module):
    """pix2pix's image-to-image translator: ``num_downs`` stride-2 levels down to a bottleneck and back up, each
    level's encoder features concatenated onto its decoder's input.

    Args:
        in_channels: input image channels.
        out_channels: output image channels.
        num_downs: levels (at least 5): 8 is the reference's ``unet_256``, 7 its ``unet_128``, 5 fits 32 px images.
        ngf: width of the first conv; it doubles per level down to ``8 * ngf``.
        norm: ``"batch"`` (pix2pix's default) or ``"instance"``.
        use_dropout: ``Dropout(0.5)`` in the ``num_downs - 5`` middle blocks at ``8 * ngf`` (pix2pix's default,
            active at test time too in the official test protocol).

    Input: (N, in_channels, H, W) in [-1, 1], H and W multiples of ``2 ** num_downs``.
    Output: (N, out_channels, H, W) in [-1, 1].
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: Norm = "batch",
        use_dropout: bool = True,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels, 3, net="UnetGenerator")
        check_positive("out_channels", out_channels, 3, net="UnetGenerator")
        check_positive("num_downs", num_downs, 8, minimum=5, net="UnetGenerator")
        check_positive("ngf", ngf, 64, net="UnetGenerator")
        norm_layer(norm, 1, "UnetGenerator")  # validates the name
        self.in_channels, self.out_channels, self.num_downs, self.ngf = in_channels, out_channels, num_downs, ngf
        #: Image sides must be multiples of this (each level halves them).
        self.size_multiple = 2**num_downs
        self.norm, self.use_dropout = norm, use_dropout

        # Built from the bottom up, as each block holds the one below it.
        block = UnetSkipConnectionBlock(8 * ngf, 8 * ngf, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(8 * ngf, 8 * ngf, submodule=block, norm=norm, use_dropout=use_dropout)
        for outer in (4 * ngf, 2 * ngf, ngf):
            block = UnetSkipConnectionBlock(outer, 2 * outer, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(out_channels, ngf, in_channels, block, outermost=True, norm=norm)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        step = 2**self.num_downs
        if height % step or width % step or height < step or width < step:
            side = step * max(1, round(max(height, width) / step))
            raise ConfigError(
                f"UnetGenerator with num_downs={self.num_downs} needs image sides that are multiples of {step}, got "
                f"{height}x{width}: resize or crop the images to e.g. {side}x{side}, or build it with fewer num_downs"
            )
        return self.model(x)
