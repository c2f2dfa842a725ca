"""Keeps a run's metric rows whole: the last iteration is always logged, and a resumed run continues the file."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from ganzoo.loop import is_last_iteration


class MetricsLog(Callback):
    """Makes the loggers' files tell the whole run.

    - The last iteration's training values are logged even when it falls between two ``log_every_n_steps``
      (a 2-iteration run with ``log_every_n_steps=50`` still has its row): at that iteration the trainer is told
      that the run stops, which is true, and Lightning logs a stopping step's values like any log step.
    - Loggers that continue a file across resumes (:class:`ganzoo.loggers.CSVLogger`) learn the step the run
      starts from before anything is logged: the rows an earlier run wrote after its last checkpoint are
      dropped, and a run from scratch starts the file over.
    """

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        # Called while fit restores the checkpoint, before anything is logged.
        self._continue_files(trainer, int(checkpoint.get("global_step", 0)))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path is None:  # from scratch; a resume is handled by on_load_checkpoint
            self._continue_files(trainer, 0)

    @staticmethod
    def _continue_files(trainer: Trainer, step: int) -> None:
        for logger in trainer.loggers:
            continue_from = getattr(logger, "continue_from", None)
            if callable(continue_from):
                continue_from(step)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.log_every_n_steps > 0 and is_last_iteration(trainer, batch_idx):
            trainer.should_stop = True
