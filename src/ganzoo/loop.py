"""Where the training loop stands: the iterations whose values are written, and the last one.

Iterations are numbered by ``trainer.global_step`` (generator updates). Lightning writes the values logged in
an iteration to the loggers when the iteration count is a multiple of ``trainer.log_every_n_steps`` or the
trainer is stopping; ganzoo reads values from the device only at those iterations, so that the others never
wait for it.
"""

from __future__ import annotations

import contextlib

from lightning.pytorch import Trainer
from lightning.pytorch.profilers import PassThroughProfiler

from ganzoo.compat import batches_stepped


def is_last_iteration(trainer: Trainer, batch_idx: int) -> bool:
    """True in the batch that ends the run, once its generator update is done: ``trainer.max_steps`` reached, or
    the last batch of the last epoch for runs measured in epochs (CycleGAN's ``max_epochs``)."""
    if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return True
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
    batches = trainer.num_training_batches
    return (
        trainer.max_steps <= 0
        and 0 < max_epochs <= trainer.current_epoch + 1
        and batches != float("inf")
        and batch_idx + 1 >= batches
    )


def writes_logs(trainer: Trainer, batch_idx: int) -> bool:
    """Whether the values logged in the current batch reach the loggers: every ``log_every_n_steps``-th batch,
    the run's last batch (:class:`~ganzoo.callbacks.MetricsLog` makes Lightning write it) and a stopping one.
    Valid once the batch's generator update is done (at the end of ``training_step``, in ``on_train_batch_end``)."""
    every = trainer.log_every_n_steps
    if every <= 0:
        return False
    # Lightning's own rule (the logger connector's should_update_logs): the count including this batch.
    return (batches_stepped(trainer) + 1) % every == 0 or trainer.should_stop or is_last_iteration(trainer, batch_idx)


def acts_at(callback: object, step: int) -> bool:
    """Whether ``callback`` works with the model at iteration ``step``: callbacks with an ``every_n_steps``
    interval (sample sheets, evaluation) at its multiples."""
    every = getattr(callback, "every_n_steps", None)
    return isinstance(every, int) and every > 0 and step % every == 0


class NoProfiler(PassThroughProfiler):
    """The Trainer's profiler when none is asked for: profiles nothing, at the least cost.

    Lightning wraps every hook call (each callback, each hook, several times per iteration) in
    ``trainer.profiler.profile(name)``; its default ``PassThroughProfiler`` does nothing there but still builds a
    generator-based context manager per call. This one hands back one shared no-op context.
    """

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._nothing
