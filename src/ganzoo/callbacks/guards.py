"""Stop a diverged run at the first non-finite loss, and never let a non-finite state become a checkpoint."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from ganzoo.checkpoint import newest_saved
from ganzoo.compat import step_logged_tensors
from ganzoo.distributed import all_reduce
from ganzoo.errors import GanzooError
from ganzoo.loop import acts_at, writes_logs

log = logging.getLogger(__name__)


class NonFiniteError(GanzooError):
    """Training produced a NaN or infinite loss (or weights): the run diverged."""


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
    """Stops training with a :class:`NonFiniteError` when a training loss is NaN or infinite, naming the first
    bad iteration, and never lets a non-finite state become a checkpoint.

    Each iteration it keeps the step's values whose names start with one of ``prefixes`` (``train/loss_d``,
    ``train/loss_g``, ...: every ganzoo model logs its losses so) on the device, stacked into one small
    tensor: nothing waits for the device. It looks at them (one host sync, and under DDP one all-reduce, so
    every process stops at the same iteration) only where the run does something with its state anyway:

    - at iterations whose values are written (every ``trainer.log_every_n_steps`` and the last),
    - at iterations where another callback acts on the model (sample sheets, evaluation: callbacks with an
      ``every_n_steps`` interval), so a diverged model is neither sampled nor evaluated,
    - before every checkpoint is written (periodic, last, preemption and failure checkpoints alike), so no
      checkpoint holds a state after a non-finite loss, and ``last.ckpt`` keeps the last good step,
    - when more than ``max_pending`` iterations are waiting (a run that logs rarely).

    The stop may come a few iterations after the bad one; the error names the first bad iteration and its values.
    It raises in ``on_train_batch_end`` before the checkpoint callbacks of that iteration
    (``conf/callbacks/default.yaml`` lists this callback first). With ``check_checkpoints`` it also refuses to write a checkpoint whose weights or
    optimizer state hold non-finite values (weights that went bad without a bad loss yet).

    Args:
        prefixes: names of the logged values to check.
        check_checkpoints: check every checkpoint's tensors before it is written.
        max_pending: iterations kept before they are checked regardless.
    """

    def __init__(
        self, prefixes: Sequence[str] = ("train/loss",), check_checkpoints: bool = True, max_pending: int = 1000
    ) -> None:
        self.prefixes = tuple(prefixes)
        self.check_checkpoints = check_checkpoints
        self.max_pending = max(1, max_pending)
        self._warned_nothing_to_check = False
        # (iteration, names, stacked values on the device) since the last check.
        self._pending: list[tuple[int, tuple[str, ...], torch.Tensor]] = []

    # ------------------------------------------------------------------------------ losses
    def _step_values(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, torch.Tensor]:
        """This iteration's values to check, as tensors on the device (no host sync)."""
        values = getattr(pl_module, "step_values", None)
        if values is None:  # a LightningModule that logs with self.log only
            values = step_logged_tensors(trainer)
        return {k: v for k, v in values.items() if k.startswith(self.prefixes) and isinstance(v, torch.Tensor)}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pending = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        values = self._step_values(trainer, pl_module)
        if not values:
            if not self._warned_nothing_to_check:
                log.warning("nonfinite_guard: the model logs nothing named %s*: no loss is checked", self.prefixes)
                self._warned_nothing_to_check = True
        else:
            names = tuple(sorted(values))
            stacked = torch.stack([values[name].reshape(()).float() for name in names])
            self._pending.append((trainer.global_step, names, stacked))
        if (
            writes_logs(trainer, batch_idx)
            or len(self._pending) >= self.max_pending
            or any(acts_at(callback, trainer.global_step) for callback in trainer.callbacks)
        ):
            self.check(trainer)

    def check(self, trainer: Trainer) -> None:
        """Look at the iterations since the last check (one host sync; all processes take part under DDP) and
        raise a :class:`NonFiniteError` naming the first one with a non-finite loss."""
        pending, self._pending = self._pending, []
        if not pending and trainer.world_size == 1:
            return
        device = pending[0][2].device if pending else trainer.strategy.root_device
        first_bad = _NO_STEP
        if pending:
            finite = torch.stack([values.isfinite().all() for _, _, values in pending])
            if not bool(finite.all()):
                first_bad = pending[int((~finite).nonzero()[0, 0])][0]
        step = first_bad
        if trainer.world_size > 1:
            # The earliest bad iteration over all processes (a process with NaNs may not be rank 0).
            step = -int(all_reduce(torch.tensor([-first_bad], device=device), "max").item())
        if step == _NO_STEP:
            return
        where = "on another process"
        for at, names, values in pending:
            if at == step and not bool(values.isfinite().all()):
                shown = zip(names, values.tolist(), strict=True)
                where = ", ".join(f"{name}={value}" for name, value in shown if not math.isfinite(value))
                break
        others = " (this or another process)" if trainer.world_size > 1 else ""
        late = f", found at step {trainer.global_step}" if trainer.global_step != step else ""
        raise NonFiniteError(f"non-finite loss at step {step}{late}: {where}{others}; {describe_last_good(trainer)}")

    # ------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        # Losses of the iterations since the last check first: a state reached after a non-finite loss is not saved.
        self.check(trainer)
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
        if not all_reduce(flag, "max").item():
            return
        first = next((name for name, t in tensors if not torch.isfinite(t).all()), "a tensor on another process")
        raise NonFiniteError(
            f"refusing to save a checkpoint at step {trainer.global_step}: {first} holds NaN or infinite values; "
            f"{describe_last_good(trainer)}"
        )


#: Stands for "no bad iteration" in the all-reduce of the first bad iteration (which takes the max of -step).
_NO_STEP = 2**62


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
