"""Weight initialisation schemes shared by the networks."""

from __future__ import annotations

from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.GroupNorm)


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN/CycleGAN init: conv and linear weights ~ N(0, std), biases 0; norm scales ~ N(1, std), shifts 0.

    Applies to every submodule; returns ``module`` for chaining.
    """
    for m in module.modules():
        if isinstance(m, _CONV):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORM) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module
