"""An exponential moving average of a network's weights (BigGAN's G_ema)."""

from __future__ import annotations

import torch
from torch import nn


class ExponentialMovingAverage:
    """Keeps ``target`` an exponential moving average of ``source``, entry by entry of their state dicts.

    After update ``step`` (the number of generator updates so far, counted from 1):
    ``target = decay * target + (1 - decay) * source`` when ``step >= start``, and ``target = source``
    before that, so the average starts from trained weights rather than from the random init. As in
    BigGAN-PyTorch, buffers are averaged too (batch-norm statistics, spectral-norm vectors); integer
    buffers are copied.

    Args:
        source: the network being trained.
        target: a network of the same architecture that holds the average (not trained itself).
        decay: weight of the old average, e.g. 0.9999.
        start: first update step that averages instead of copying.
    """

    def __init__(self, source: nn.Module, target: nn.Module, decay: float = 0.9999, start: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.source = source
        self.target = target
        self.decay = decay
        self.start = start

    def decay_at(self, step: int) -> float:
        """The decay used by :meth:`update` at ``step`` (0 means copy)."""
        return 0.0 if step < self.start else self.decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = self.decay_at(step)
        source = self.source.state_dict()
        averaged: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        for name, average in self.target.state_dict().items():
            value = source[name]
            if decay == 0.0 or not average.is_floating_point():
                average.copy_(value)
            else:
                averaged.append(average)
                values.append(value.to(average.dtype))
        if averaged:
            # One multi-tensor kernel for all of them instead of a launch per tensor (BigGAN's G has hundreds).
            torch._foreach_lerp_(averaged, values, 1.0 - decay)
