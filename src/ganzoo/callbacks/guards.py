"""Stop a diverged run at the first non-finite loss, and never let a non-finite state become a checkpoint."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer

from ganzoo.checkpoint import newest_checkpoint
from ganzoo.errors import GanzooError

log = logging.getLogger(__name__)


class NonFiniteError(GanzooError):
    """Training produced a NaN or infinite loss (or weights): the run diverged."""


def all_reduce(trainer: Trainer, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``torch.distributed.all_reduce`` (``op``: "sum" or "max") under DDP, in place; a no-op on one process.

    Unlike ``trainer.strategy.reduce`` it adds no barrier: one collective per call.
    """
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def checkpoint_dirs(trainer: Trainer) -> list[Path]:
    """Where this run writes checkpoints: the folders of its checkpoint callbacks (``<run dir>/checkpoints``)."""
    dirs = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
    return dirs or [Path(trainer.default_root_dir) / "checkpoints"]


def newest_saved(trainer: Trainer) -> tuple[Path, int] | None:
    """The run's newest checkpoint on disk and its step, or None when it has none that can be read."""
    try:
        return newest_checkpoint(checkpoint_dirs(trainer))
    except GanzooError:
        return None


def describe_last_good(trainer: Trainer) -> str:
    """'the last good checkpoint is <path> (step N)', or what to do when the run has saved none."""
    newest = newest_saved(trainer)
    if newest is None:
        return "no checkpoint was saved before it: start again with a lower learning rate"
    path, step = newest
    return (
        f"the last good checkpoint is {path} (step {step}); resume from it with ckpt_path={path} if the cause was "
        "transient, or start again with a lower learning rate (a resumed run keeps the checkpoint's optimizer settings)"
    )


class NonFiniteGuard(Callback):
    """Stops training with a :class:`NonFiniteError` at the first step whose logged loss is NaN or infinite.

    Every iteration it looks at the values the model logged in that step whose names start with one of
    ``prefixes`` (``train/loss_d``, ``train/loss_g``, ...: every ganzoo model logs its losses so). Under DDP
    the values are summed over the processes, so a NaN on any of them stops all of them at the same step and
    none waits in a collective. The cost is one small host sync (and under DDP one all-reduce) per step.

    It raises in ``on_train_batch_end``, before the checkpoint callbacks of that step run (Lightning runs
    those last; ``ganzoo.train`` also puts this callback first), so the diverged state is not saved and
    ``last.ckpt`` keeps the last good step. With ``check_checkpoints`` it also refuses to write any checkpoint
    whose weights or optimizer state hold non-finite values (weights that went bad without a bad loss yet).

    Args:
        prefixes: names of the logged values to check.
        check_checkpoints: check every checkpoint's tensors before it is written.
    """

    def __init__(self, prefixes: Sequence[str] = ("train/loss",), check_checkpoints: bool = True) -> None:
        self.prefixes = tuple(prefixes)
        self.check_checkpoints = check_checkpoints
        self._warned_nothing_to_check = False

    # ------------------------------------------------------------------------------ losses
    def _step_values(self, trainer: Trainer) -> dict[str, torch.Tensor]:
        """The values logged in the current step whose names match ``prefixes``, as tensors (no host sync)."""
        try:
            # The step's own values, before Lightning's end-of-step bookkeeping (which calls .item() on every
            # progress-bar value). Private API of Lightning 2.x; the public fallback below gives the same values.
            found = {}
            for _, metric in trainer._results.valid_items():
                cached = metric._forward_cache
                if metric.meta.on_step and metric.meta.name.startswith(self.prefixes) and torch.is_tensor(cached):
                    found[metric.meta.name] = cached
            return found
        except AttributeError:
            return {
                name: value
                for name, value in trainer.callback_metrics.items()
                if name.startswith(self.prefixes) and torch.is_tensor(value)
            }

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        values = self._step_values(trainer)
        if not values:
            if not self._warned_nothing_to_check:
                log.warning("nonfinite_guard: the model logs nothing named %s*: no loss is checked", self.prefixes)
                self._warned_nothing_to_check = True
            return
        names = sorted(values)
        device = values[names[0]].device
        stacked = torch.stack([values[name].detach().reshape(-1)[0].float().to(device) for name in names])
        # A sum keeps any NaN/inf of any process; the one host sync of this callback per step.
        summed = all_reduce(trainer, stacked).tolist()
        bad = [(name, value) for name, value in zip(names, summed, strict=True) if not math.isfinite(value)]
        if bad:
            where = ", ".join(f"{name}={value}" for name, value in bad)
            others = " (summed over processes)" if trainer.world_size > 1 else ""
            raise NonFiniteError(
                f"non-finite loss at step {trainer.global_step}: {where}{others}; {describe_last_good(trainer)}"
            )

    # ------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.check_checkpoints:
            return
        tensors = list(_float_tensors(checkpoint.get("state_dict", {}), "state_dict"))
        for i, state in enumerate(checkpoint.get("optimizer_states", [])):
            tensors += _float_tensors(state.get("state", {}), f"optimizer_states[{i}]")
        device = pl_module.device
        if tensors:
            finite = torch.stack([torch.isfinite(t).all().to(device) for _, t in tensors]).all()
        else:
            finite = torch.ones((), dtype=torch.bool, device=device)
        flag = (~finite).to(torch.int32).reshape(1)
        if not all_reduce(trainer, flag, "max").item():
            return
        first = next((name for name, t in tensors if not torch.isfinite(t).all()), "a tensor on another process")
        raise NonFiniteError(
            f"refusing to save a checkpoint at step {trainer.global_step}: {first} holds NaN or infinite values; "
            f"{describe_last_good(trainer)}"
        )


def _float_tensors(tree: Any, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for every floating-point tensor in nested dicts/lists."""
    if torch.is_tensor(tree):
        if tree.is_floating_point() or tree.is_complex():
            yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _float_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            yield from _float_tensors(value, f"{prefix}[{i}]")
