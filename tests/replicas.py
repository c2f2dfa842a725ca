"""A test-only callback: each DDP process writes its own copy of the model state, so tests can compare ranks.

Added to a CLI run with ``+callbacks.replicas._target_=tests.replicas.SaveReplicaState
+callbacks.replicas.dirpath=<dir>`` (the CLI runs from the repository root, where ``tests`` imports).
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

#: Batch-norm statistics: each process keeps its own unless batch norm is synchronized.
LOCAL_STATISTICS = ("running_mean", "running_var", "num_batches_tracked", "stored_mean", "stored_var")


class SaveReplicaState(Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.batch_sizes: list[int] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        self.batch_sizes.append(int(batch[0].shape[0]))

    def _save(self, trainer: Trainer, pl_module: LightningModule, tag: str) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(
            {"state": state, "batch_sizes": self.batch_sizes, "world_size": trainer.world_size},
            self.dirpath / f"rank{trainer.global_rank}_{tag}.pt",
        )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer, pl_module, "start")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer, pl_module, "end")


def replica_overrides(dirpath: Path) -> tuple[str, ...]:
    return ("+callbacks.replicas._target_=tests.replicas.SaveReplicaState", f"+callbacks.replicas.dirpath={dirpath}")


def assert_replicas_identical(dirpath: Path, local_statistics: bool = True) -> dict:
    """Both ranks end with the same weights (bit for bit), changed by training; returns rank 0's record.

    With ``local_statistics`` batch-norm statistics may differ between ranks (plain DDP); otherwise every
    buffer must match too (synchronized batch norm).
    """
    ranks = [torch.load(dirpath / f"rank{r}_end.pt", weights_only=True) for r in (0, 1)]
    start = torch.load(dirpath / "rank0_start.pt", weights_only=True)["state"]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    compared = [k for k in first if not (local_statistics and k.endswith(LOCAL_STATISTICS))]
    differing = [k for k in compared if not torch.equal(first[k], second[k])]
    assert not differing, f"ranks differ in {differing[:5]}"
    trained = [k for k in compared if first[k].is_floating_point() and not torch.equal(first[k], start[k])]
    assert len(trained) > len(compared) // 2, "training changed too few tensors"
    return ranks[0]
