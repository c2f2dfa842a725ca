"""Checkpointing that always leaves ``last.ckpt`` at the final state of a run, ready to resume."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class GANCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` when training stops between two save intervals.

    When ``max_steps`` ends the run, the save happens at the end of that last batch, while the loops'
    state still says "mid-epoch": saved later, in ``on_train_end``, Lightning would already have closed
    the epoch and a resumed run would skip the rest of it. Runs that end otherwise (``max_epochs``) are
    saved in ``on_train_end``. A crash or Ctrl-C reaches neither: the newest interval checkpoint remains.
    """

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            self._save_final(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_final(trainer)

    def _save_final(self, trainer: Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            # Marks this step as saved, so on_train_end does not overwrite it with the closed-epoch state.
            self._last_global_step_saved = trainer.global_step
