"""Checkpointing that always leaves ``last.ckpt`` at the final state of a run, ready to resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from ganzoo.checkpoint import checkpoint_dirs, checkpoint_step, unwritable_reason
from ganzoo.compat import (
    checkpoint_candidates,
    mark_step_saved,
    save_last_checkpoint_file,
    save_top_k_checkpoint,
    skips_checkpoint_now,
    write_checkpoint_file,
)
from ganzoo.errors import CheckpointError, GanzooError


class GANCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` when training stops between two save intervals.

    When ``max_steps`` ends the run, the save happens at the end of that last batch, while the loops'
    state still says "mid-epoch": saved later, in ``on_train_end``, Lightning would already have closed
    the epoch and a resumed run would skip the rest of it. Runs that end otherwise (``max_epochs``) are
    saved in ``on_train_end``. A run stopped by an error is saved by :class:`~ganzoo.callbacks.FailureCheckpoint`
    (through :meth:`save_last_now`), a SIGTERM by :class:`~ganzoo.callbacks.PreemptionCheckpoint`.

    Before training starts it checks that its folder can be written (a real write probe), so that an
    unwritable ``dirpath`` is one error line at once, not a traceback at the first save; a save that fails
    (a full disk) is a :class:`~ganzoo.errors.CheckpointError` naming the file.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Every process checks (no collective): each one then fails at the same point, none waits for another.
        if stage == "fit" and self.dirpath and (self.save_top_k != 0 or self.save_last):
            reason = unwritable_reason(self.dirpath)
            if reason is not None:
                raise CheckpointError(f"cannot write checkpoints to {self.dirpath}: {reason}; {self._fix(pl_module)}")

    def _fix(self, pl_module: LightningModule) -> str:
        """The overrides that move this callback's checkpoints elsewhere, in the words of the run's config."""
        run_config = getattr(pl_module, "run_config", None) or {}
        here = os.path.abspath(str(self.dirpath))
        keys = [
            f"callbacks.{name}.dirpath=<a writable folder>"
            for name, entry in (run_config.get("callbacks") or {}).items()
            if isinstance(entry, dict) and entry.get("dirpath") and os.path.abspath(str(entry["dirpath"])) == here
        ]
        options = []
        output_dir = (run_config.get("paths") or {}).get("output_dir")
        if output_dir and Path(here).is_relative_to(os.path.abspath(str(output_dir))):
            options.append("hydra.run.dir=<a writable folder>")
        options.append(" ".join(keys) if keys else "dirpath=<a writable folder> for this checkpoint callback")
        return "pass " + ", or ".join(options)

    # Overrides the private hook every ModelCheckpoint write goes through (see ganzoo.compat.write_checkpoint_file).
    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        try:
            write_checkpoint_file(self, trainer, filepath)
        except OSError as e:  # a full disk, a folder that went away or became read-only mid-run
            raise CheckpointError(
                f"cannot write checkpoint {filepath} ({e.strerror or type(e).__name__}): free space in "
                f"{os.path.dirname(filepath)} or {self._fix(trainer.lightning_module)}"
            ) from e

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            self._save_final(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_final(trainer)

    def _save_final(self, trainer: Trainer) -> None:
        self.save_last_now(trainer)

    def save_last_now(self, trainer: Trainer, verify: bool = False) -> str:
        """Write ``last.ckpt`` for the current step (the end of a run, a preemption or an error at a step boundary)
        unless this step is saved already; returns the path of ``last.ckpt`` ("" when there is none).

        With ``verify`` "saved already" is checked on disk (the step recorded in ``last.ckpt``), not by this
        callback's bookkeeping, which counts a step as saved once any of its checkpoints was written: after a
        failed save it may not have been ``last.ckpt``.
        """
        if not self.save_last:
            return ""
        if verify:
            if self.last_model_path and _saved_step(self.last_model_path) == trainer.global_step:
                return self.last_model_path
            if bool(trainer.fast_dev_run):
                return ""
            mark_step_saved(self, -1)  # so the check below does not skip this step
        if not skips_checkpoint_now(self, trainer):
            save_last_checkpoint_file(self, trainer)
            # Marks this step as saved, so on_train_end does not overwrite it with the closed-epoch state.
            mark_step_saved(self, trainer.global_step)
        return self.last_model_path


def _saved_step(path: str) -> int | None:
    try:
        return checkpoint_step(path) if os.path.isfile(path) else None
    except GanzooError:
        return None


def save_last_checkpoint(trainer: Trainer, verify: bool = False) -> str:
    """Write ``last.ckpt`` for the current step through the run's :class:`GANCheckpoint` (or, without one, into
    the run's checkpoint folder); returns its path, "" when checkpointing is off. Every DDP process must call it
    (a save has collectives). ``verify``: see :meth:`GANCheckpoint.save_last_now`."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, GANCheckpoint) and callback.save_last:
            return callback.save_last_now(trainer, verify=verify)
    if trainer.fast_dev_run:
        return ""
    path = str(checkpoint_dirs(trainer)[0] / "last.ckpt")
    trainer.save_checkpoint(path)
    return path


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

    def applies_to(self, pl_module: LightningModule) -> bool:
        """Whether it has anything to keep: ``ganzoo.train`` leaves it out of a run without a monitor."""
        return self.monitor is not None

    def _save_final(self, trainer: Trainer) -> None:
        if self.monitor is None or skips_checkpoint_now(self, trainer):
            return
        candidates = checkpoint_candidates(self, trainer)
        if self.monitor in candidates:
            save_top_k_checkpoint(self, trainer, candidates)
            mark_step_saved(self, trainer.global_step)
