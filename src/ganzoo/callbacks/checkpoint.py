"""Checkpointing that always leaves ``last.ckpt`` at the final state of a run."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class GANCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` when training stops between two save intervals
    (``max_steps`` not a multiple of ``every_n_train_steps``, an interrupted epoch), so resuming or
    sampling from ``last.ckpt`` always starts from where the run ended."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
