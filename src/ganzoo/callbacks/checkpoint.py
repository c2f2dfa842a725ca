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
        self.save_last_now(trainer)

    def save_last_now(self, trainer: Trainer) -> str:
        """Write ``last.ckpt`` for the current step (the end of a run, or a preemption at a step boundary)
        unless this step is saved already; returns the path of ``last.ckpt`` ("" when there is none)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            # Marks this step as saved, so on_train_end does not overwrite it with the closed-epoch state.
            self._last_global_step_saved = trainer.global_step
        return self.last_model_path


class BestCheckpoint(GANCheckpoint):
    """Keeps the checkpoint with the best value of an evaluation metric (``monitor``, e.g. ``val/fid_fmnist``).

    Configure ``every_n_train_steps`` to the evaluation interval (the config interpolates it), so it looks
    at the metric right after each evaluation; the evaluation at the end of training is considered too.
    With ``monitor=None`` (no metrics configured: ``~metrics`` on the command line) it saves nothing.
    """

    def __init__(self, monitor: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", False)
        kwargs.setdefault("save_top_k", 1)
        if monitor is None:
            kwargs.update(save_top_k=0, save_last=False, every_n_train_steps=0)
        super().__init__(monitor=monitor, **kwargs)

    def _save_final(self, trainer: Trainer) -> None:
        if self.monitor is None or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor in candidates:
            self._save_topk_checkpoint(trainer, candidates)
            self._last_global_step_saved = trainer.global_step
