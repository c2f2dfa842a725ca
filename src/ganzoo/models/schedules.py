"""Learning-rate schedules of the reference implementations."""

from __future__ import annotations

import torch


def linear_decay(n_epochs: int, n_epochs_decay: int, epoch_count: int = 1):
    """CycleGAN's "linear" policy as a LambdaLR factor of the epoch index (0-based, stepped once per epoch).

    The rate stays at its initial value for ``n_epochs`` epochs, then falls linearly over ``n_epochs_decay``
    epochs: factor(e) = 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1). ``epoch_count`` is the
    official option for continuing a run at a later epoch.
    """

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)

    return factor


def linear_decay_schedules(
    optimizers: list[torch.optim.Optimizer], n_epochs: int, n_epochs_decay: int, epoch_count: int = 1
) -> list[torch.optim.lr_scheduler.LambdaLR]:
    """One :func:`linear_decay` LambdaLR per optimizer, as the official CycleGAN and pix2pix models build them
    (stepped at each epoch end)."""
    factor = linear_decay(n_epochs, n_epochs_decay, epoch_count)
    return [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in optimizers]
