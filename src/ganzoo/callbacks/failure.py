"""An error mid-run loses no work: ``last.ckpt`` at the last completed iteration, and the error in the run's log."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn

from ganzoo.callbacks.checkpoint import save_last_checkpoint
from ganzoo.callbacks.guards import NonFiniteError
from ganzoo.checkpoint import newest_saved
from ganzoo.errors import GanzooError, ganzoo_cause

log = logging.getLogger(__name__)


class FailureCheckpoint(Callback):
    """When an error that is not the model's fault stops training (a corrupt image reached by the data loader,
    an exception in a callback, a full disk at a periodic save), write ``last.ckpt`` at the last completed
    iteration before the process exits, so that the same command plus ``hydra.run.dir=<run dir> ckpt_path=last``
    continues from there once the cause is fixed. The error also goes to the run's log file (Hydra's
    ``<run dir>/train.log``), with the traceback when it is not a ganzoo error.

    What is saved, by where the error came from:

    - between iterations (fetching the next batch, a callback, the evaluation, a checkpoint save): the state is
      that of the last completed iteration, and it is saved. A ganzoo error (one ``error:`` line) gets the
      checkpoint and the resume command appended to its line; any other exception keeps its traceback (it is a
      bug to report) and the log says where the checkpoint is.
    - inside the model's ``training_step`` (seen in the exception's traceback): its updates may be half applied
      (D stepped, G not; G stepped, the EMA not), so nothing is saved; the log names the newest checkpoint.
    - a failed save itself (a full disk): ``last.ckpt`` is tried once more, and both outcomes are reported.
    - a non-finite loss (:class:`~ganzoo.callbacks.NonFiniteError`): never saved, the diverged state is no
      use; the guard's message names the last good checkpoint.
    - under DDP (more than one process) nothing is saved: a save needs every process (the noise streams of all
      ranks are gathered into it), while an error stops the process it happened in, whose peers are elsewhere
      in the step; a collective from here would hang. The log says so and names the newest checkpoint.

    SIGTERM and Ctrl-C are not errors: :class:`~ganzoo.callbacks.PreemptionCheckpoint` saves on SIGTERM, and a
    Ctrl-C keeps the newest interval checkpoint.

    Args:
        log_errors: also write the error (and a non-ganzoo error's traceback) into the run's log files.
    """

    def __init__(self, log_errors: bool = True) -> None:
        self.log_errors = log_errors
        self._start_step: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._start_step = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After a resumed run's restore: iterations up to here are on disk already.
        self._start_step = trainer.global_step

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, Exception):
            return  # SIGTERM (SystemExit) and Ctrl-C: see the class docstring
        try:
            note = self._save(trainer, pl_module, exception)
            self._report(trainer, exception, note)
        except Exception:  # never let this hide the error that stopped training
            log.exception("could not save or report the state after the error below")

    # --------------------------------------------------------------------------------- saving
    def _save(self, trainer: Trainer, pl_module: LightningModule, exception: Exception) -> str:
        """Save when that is right (see the class docstring); the sentence that tells the user what happened."""
        step = trainer.global_step
        if (
            isinstance(exception, NonFiniteError)
            or self._start_step is None
            or step <= self._start_step
            or trainer.state.fn != TrainerFn.FITTING
        ):
            return ""  # diverged, or nothing trained by this process that is not on disk already
        if _inside_training_step(exception, pl_module):
            return (
                f"the error came inside iteration {step + 1}, whose updates may be partly applied, so that state "
                f"is not saved; {_newest(trainer)}"
            )
        if trainer.world_size > 1:
            return (
                f"the state at step {step} is not saved: under DDP a save needs every process at once, and an error "
                f"reaches only the process it happened in (here rank {trainer.global_rank}); {_newest(trainer)}"
            )
        try:
            path = save_last_checkpoint(trainer, verify=True)
        except Exception as e:  # e.g. the full disk that caused the error; tried once
            reason = str(e) if isinstance(e, GanzooError) else f"{type(e).__name__}: {e}"
            return f"saving last.ckpt at step {step} failed too ({reason}); {_newest(trainer)}"
        if not path:
            return f"the state at step {step} is not saved (checkpointing is off)"
        return (
            f"the state at step {step} (the last completed iteration) is saved in {path}: after the fix, resume with "
            f"the same command plus hydra.run.dir={trainer.default_root_dir} ckpt_path=last"
        )

    # ------------------------------------------------------------------------------ reporting
    def _report(self, trainer: Trainer, exception: Exception, note: str) -> None:
        cause = ganzoo_cause(exception)
        if cause is not None:
            # The error stays one line (printed by the entry point); what happened to the run's state joins it.
            if note:
                first = str(cause.args[0]) if cause.args else ""
                cause.args = (f"{first}; {note}" if first else note, *cause.args[1:])
            if self.log_errors:
                _to_log_files(logging.ERROR, f"error: {cause}")
            return
        where = f" at step {trainer.global_step}" if trainer.global_step else ""
        message = f"training stopped{where} by an unexpected {type(exception).__name__} (a bug: please report it"
        message += " with the traceback)" + (f"; {note}" if note else "")
        log.error(message)
        if self.log_errors:
            _to_log_files(logging.ERROR, "traceback:", (type(exception), exception, exception.__traceback__))


def _inside_training_step(exception: BaseException, pl_module: LightningModule) -> bool:
    """Whether ``exception`` was raised inside the model's ``training_step`` (its own or an inherited one)."""
    codes = {
        function.__code__
        for cls in type(pl_module).__mro__
        if (function := cls.__dict__.get("training_step")) is not None and hasattr(function, "__code__")
    }
    tb = exception.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


def _newest(trainer: Trainer) -> str:
    """Where the run can resume from instead: its newest checkpoint on disk."""
    newest = newest_saved(trainer)
    if newest is None:
        return "no checkpoint of this run is on disk"
    path, step = newest
    return (
        f"the newest checkpoint is {path} (step {step}): after the fix, resume with the same command plus "
        f"hydra.run.dir={trainer.default_root_dir} ckpt_path=last"
    )


def _to_log_files(level: int, message: str, exc_info: Any = None) -> None:
    """Write one record to the log files only (Hydra's ``<run dir>/<job>.log``): the console shows the error
    already (the entry point's ``error:`` line, or Python's traceback), and a second copy there is noise."""
    record = log.makeRecord(log.name, level, __file__, 0, message, None, exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
