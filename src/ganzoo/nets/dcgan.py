"""DCGAN generator and discriminator (Radford et al. 2016), sized like pytorch/examples' ``dcgan``.

Both keep the layers in one ``nn.Sequential`` named ``main`` with the reference's layer order, so a
64x64 ``netG.pth`` / ``netD.pth`` saved by pytorch/examples loads with ``load_state_dict`` unchanged.
The discriminator returns logits (the reference's final ``Sigmoid`` is folded into the loss, which is
numerically safer and autocast-safe); ``Sigmoid`` has no parameters, so the state dicts still match.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.init import init_normal


def _num_stages(image_size: int) -> int:
    """Number of stride-2 stages between 4x4 and ``image_size`` (3 for 32 px, 4 for 64 px)."""
    stages = math.log2(image_size / 4) if image_size >= 8 else -1
    if stages < 1 or not float(stages).is_integer():
        raise ConfigError(
            f"DCGAN needs image_size = 4 * 2^k with k >= 1 (8, 16, 32, 64, 128, ...), got {image_size}: "
            "set data.image_size=32 or 64"
        )
    return int(stages)


class DCGANGenerator(nn.Module):
    """Maps latent vectors to images.

    Args:
        image_size: output side length, 4 * 2^k (32 and 64 are the usual ones).
        channels: output channels (1 grey, 3 RGB).
        nz: latent size.
        ngf: width of the last hidden layer; earlier layers double it each stage.

    Input ``z``: (N, nz) or (N, nz, 1, 1), standard normal. Output: (N, channels, image_size, image_size) in [-1, 1].
    """

    def __init__(self, image_size: int = 64, channels: int = 3, nz: int = 100, ngf: int = 64) -> None:
        super().__init__()
        stages = _num_stages(image_size)
        self.nz = nz
        width = ngf * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Maps images to one real/fake logit each.

    Args:
        image_size: input side length, 4 * 2^k.
        channels: input channels.
        ndf: width of the first layer; later layers double it each stage.

    Input: (N, channels, image_size, image_size) in [-1, 1]. Output: (N,) logits (apply a sigmoid for D(x)).
    """

    def __init__(self, image_size: int = 64, channels: int = 3, ndf: int = 64) -> None:
        super().__init__()
        stages = _num_stages(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()
