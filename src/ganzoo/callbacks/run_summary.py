"""The lines that close a training run: where it stopped, its last checkpoint, its newest sheets, its best value."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

# The closing report of `python -m ganzoo.train`: its lines carry that command's logger name.
log = logging.getLogger("ganzoo.train")


class RunSummary(Callback):
    """When a fit completes (not after an error or a preemption), on rank zero only, logs::

        finished at step 1500; outputs in outputs/train/runs/<time>
        checkpoint: <run dir>/checkpoints/last.ckpt
        samples: <run dir>/samples/step_0001500.png
        best val/fid_fmnist = 41.2345 at step 1000; checkpoint: <run dir>/checkpoints/best.ckpt

    The other callbacks are read by what they offer, not by their class: the trainer's checkpoint callback's
    ``last_model_path``; ``last_written`` of the image sheets whose ``name`` (their folder) is in ``sheets``; and for
    each callback that keeps a best value (a ``monitor`` and ``best() -> (step, value) | None``: the evaluation),
    that value with ``best_model_path`` of the checkpoint callback that monitors the same key. Lines without a
    value (no checkpoint written, no evaluation after step 0) are left out.

    Args:
        output_dir: the run's output folder (``paths.output_dir``).
        sheets: names of the image sheets listed (``samples``: sample grids, ``translations``: translation sheets).
    """

    def __init__(self, output_dir: str, sheets: Sequence[str] = ("samples", "translations")) -> None:
        self.output_dir = str(output_dir)
        self.sheets = tuple(sheets)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        log.info("finished at step %d; outputs in %s", trainer.global_step, self.output_dir)
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        if last:
            log.info("checkpoint: %s", last)
        for callback in trainer.callbacks:
            written = getattr(callback, "last_written", None)
            if written and getattr(callback, "name", None) in self.sheets:
                log.info("samples: %s", written)
        for callback in trainer.callbacks:
            if callable(getattr(callback, "best", None)) and getattr(callback, "monitor", None):
                self._log_best(trainer, callback)

    @staticmethod
    def _log_best(trainer: Trainer, keeper: Any) -> None:
        best = keeper.best()
        if best is None:
            return
        step, value = best
        saved = [
            cb.best_model_path
            for cb in trainer.callbacks
            if isinstance(cb, ModelCheckpoint) and cb.monitor == keeper.monitor and cb.best_model_path
        ]
        where = f"; checkpoint: {saved[0]}" if saved else ""
        log.info("best %s = %.4f at step %d%s", keeper.monitor, value, step, where)
