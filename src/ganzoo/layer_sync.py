"""``trainer.sync_batchnorm=true`` for ganzoo's networks, on GPUs and CPUs alike."""

from __future__ import annotations

from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from torch import nn

from ganzoo.nets.sync_batchnorm import set_cross_replica


class CrossReplicaBatchNormSync(TorchSyncBatchNorm):
    """Lightning's layer-sync plugin switching every batch norm to cross-replica statistics.

    Lightning's own converts ``nn.BatchNorm*`` to ``nn.SyncBatchNorm``, which needs GPUs and leaves BigGAN's
    stored-statistics batch norms alone; this one covers both (see :mod:`ganzoo.nets.sync_batchnorm`).
    A subclass of Lightning's plugin, so that ``Trainer(sync_batchnorm=True)`` accepts it.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        return set_cross_replica(model, True)

    def revert(self, model: nn.Module) -> nn.Module:
        return set_cross_replica(model, False)
