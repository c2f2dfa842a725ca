"""The private Lightning internals ganzoo reads, in one place, each with a public fallback.

Lightning 2.x has no public API for these; when a release renames one, the fallback keeps ganzoo working
(slower or less precise, never wrong) and only this module needs updating.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Trainer


def batches_stepped(trainer: Trainer) -> int:
    """Training batches completed before the current one over the whole run (resumes included): the count
    Lightning's logger connector numbers log steps by. Fallback: ``trainer.global_step``, which equals it for
    ganzoo's models (one generator update per batch) before the batch's generator update."""
    try:
        return int(trainer.fit_loop.epoch_loop._batches_that_stepped)
    except AttributeError:
        return trainer.global_step


def current_batch_index(trainer: Trainer) -> int:
    """Index of the batch being trained on within its epoch (the ``batch_idx`` of the hooks)."""
    return int(trainer.fit_loop.epoch_loop.batch_idx)


def step_logged_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The tensors logged with ``self.log`` in the current training step, by name, without a host sync.

    Read from the trainer's result collection before Lightning's end-of-step bookkeeping (which converts
    progress-bar values to numbers); fallback: ``trainer.callback_metrics``, which holds the same values
    once the step has ended.
    """
    try:
        found: dict[str, Any] = {}
        for _, metric in trainer._results.valid_items():
            cached = metric._forward_cache
            if metric.meta.on_step and torch.is_tensor(cached):
                found[metric.meta.name] = cached
        return found
    except AttributeError:
        return {name: value for name, value in trainer.callback_metrics.items() if torch.is_tensor(value)}


def disable_sigterm_broadcast(trainer: Trainer) -> None:
    """Stop Lightning's training loop from broadcasting its SIGTERM flag at every iteration under DDP.

    Lightning 2.x sends the flag from a device tensor and reads it back (``.item()``) at each iteration, which
    makes every process wait for its GPU; :class:`~ganzoo.callbacks.PreemptionCheckpoint` handles SIGTERM itself
    and calls this. Without the private method (another Lightning version) nothing changes.
    """
    loop = trainer.fit_loop.epoch_loop
    if hasattr(loop, "_broadcast_sigterm_tensor"):
        loop._broadcast_sigterm_tensor = lambda: None
