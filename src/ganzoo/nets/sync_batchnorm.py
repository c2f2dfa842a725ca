"""Cross-replica batch norm: training-mode statistics over the batches of every DDP process.

With DDP each process normalizes by the statistics of its own share of the batch, so a global batch of 64
on 8 GPUs normalizes over 8 images at a time. Cross-replica (synchronized) batch norm restores the
single-device behaviour: means and variances are summed over all processes, and so are their gradients.
BigGAN-PyTorch calls it ``--cross_replica``; ``torch.nn.SyncBatchNorm`` does the same but only on GPUs, while
this one runs on any backend (gloo on CPUs included), so the same code is tested here and used on clusters.

Networks opt in per layer through the ``cross_replica`` attribute, which :func:`set_cross_replica` switches;
it is off by default and only has an effect in training mode inside an initialized process group of more
than one process. Sampling on one process alone must switch it off (:func:`local_statistics`), since every
process has to take part in each synchronized forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.distributed import world_size


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    cross_replica: bool = False,
) -> Tensor:
    """``F.batch_norm`` over (N, C, ...) inputs, with the batch statistics taken over all processes when
    ``cross_replica`` is set (and training, in a group of more than one process).

    The statistics are computed in float32 in two passes (global mean first, then the summed squared
    deviations from it), so large means do not cancel the variance; processes may hold different batch
    sizes. ``running_mean``/``running_var`` follow ``momentum`` as in ``F.batch_norm`` (unbiased variance).
    """
    if not (training and cross_replica and world_size() > 1):
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    from torch.distributed.nn.functional import all_reduce  # differentiable: gradients are summed too

    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    xf = x.float()
    count = torch.full((1,), x.numel() // x.shape[1], dtype=torch.float32, device=x.device)
    sums = all_reduce(torch.cat([xf.sum(dims), count]))
    total = sums[-1]
    mean = sums[:-1] / total
    centered = xf - mean.view(shape)
    var = all_reduce((centered * centered).sum(dims)) / total
    if running_mean is not None and running_var is not None and momentum:
        with torch.no_grad():
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * total / (total - 1).clamp(min=1)).to(running_var.dtype), momentum)
    out = centered * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.float().view(shape)
    if bias is not None:
        out = out + bias.float().view(shape)
    return out.to(x.dtype)


class CrossReplicaBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state-dict keys) that can synchronize its statistics.

    ``forward``: (N, C, H, W) -> (N, C, H, W). With ``cross_replica`` off it is exactly ``nn.BatchNorm2d``.
    """

    cross_replica: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.cross_replica and world_size() > 1):
            return super().forward(x)
        momentum = self.momentum or 0.0
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, True, momentum, self.eps, True
        )

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d) -> CrossReplicaBatchNorm2d:
        """A copy of ``bn`` sharing its parameters and buffers (optimizers keep working)."""
        new = cls.__new__(cls)
        new.__dict__.update(bn.__dict__)  # the same parameter and buffer dicts, so the same tensors
        return new


def _replace_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, CrossReplicaBatchNorm2d.from_batch_norm(child))
        else:
            _replace_batch_norms(child)


def set_cross_replica(module: nn.Module, enabled: bool) -> nn.Module:
    """Switch cross-replica statistics on or off in every batch norm of ``module``, in place.

    Turning it on first replaces each plain ``nn.BatchNorm2d`` by a :class:`CrossReplicaBatchNorm2d` that
    shares its tensors; ganzoo's own batch norms (BigGAN's) carry the switch already.
    """
    if enabled:
        _replace_batch_norms(module)
    for m in module.modules():
        if hasattr(type(m), "cross_replica"):
            m.cross_replica = enabled
    return module


@contextmanager
def local_statistics(module: nn.Module) -> Iterator[None]:
    """Inside the block every batch norm of ``module`` uses this process's batch only (for sampling)."""
    layers = [m for m in module.modules() if getattr(m, "cross_replica", False)]
    for m in layers:
        m.cross_replica = False
    try:
        yield
    finally:
        for m in layers:
            m.cross_replica = True
