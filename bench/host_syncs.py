"""Finds the places where a training iteration makes the host wait for the device.

:class:`HostSyncWatch` is a Lightning callback. During the iterations it watches (those where nothing is due:
not a log, evaluation, sample-sheet or checkpoint iteration, nor the first or the last) it

* counts the Python-level conversions of tensors to host values: ``Tensor.item``, ``tolist``, ``__bool__``,
  ``__int__``, ``__float__``, ``cpu``, ``numpy`` and ``to`` a CPU device from another device. On a GPU each
  of these waits for every kernel queued before it; on a CPU they cost nothing, but a call there is a call on a
  GPU too, so the count on a CPU run finds them all (except those inside C++ kernels, which the next point
  catches). Calls from ``torch.optim`` are not counted: optimizers keep their step counters on the host;
* with ``cuda_errors`` on a CUDA device, switches ``torch.cuda.set_sync_debug_mode("error")`` on, so any
  synchronising CUDA call (a blocking copy, ``nonzero``, a masked index, ...) raises.

An iteration is watched from its ``on_train_batch_start`` to the next one's, without the loader's own work
(fetching the next batch happens in between, on the host: ``DataLoader.__iter__`` and ``__next__`` are not
watched). Calls are
recorded as ``"step N: Tensor.item at file:line (function)"`` in :attr:`violations`; a CUDA sync error is
recorded the same way and stops the run.

The tests use it on the CPU (``tests/test_host_syncs.py``); ``python -m bench.gpu_check`` uses it on a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import dataloader

from ganzoo.compat import batches_stepped
from ganzoo.loop import acts_at

#: The Tensor methods whose Python-level calls make the host wait for the device.
WATCHED_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy", "to")

_HERE = os.path.dirname(os.path.abspath(__file__))
_TORCH = os.path.dirname(os.path.abspath(torch.__file__))
_TORCH_OPTIM = os.path.join(_TORCH, "optim")


def _moves_to_host(tensor: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``tensor.to(*args, **kwargs)`` copies a tensor from another device to the CPU."""
    if tensor.device.type == "cpu":
        return False
    target = kwargs.get("device", args[0] if args else None)
    if isinstance(target, torch.Tensor):
        target = target.device
    with contextlib.suppress(RuntimeError, TypeError):
        return target is not None and not isinstance(target, torch.dtype) and torch.device(target).type == "cpu"
    return False


def _call_site() -> str:
    """``file:line (function)`` of the innermost caller outside torch and this module."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        path = os.path.abspath(frame.filename)
        if not path.startswith((_TORCH, _HERE)):
            return f"{os.path.relpath(path)}:{frame.lineno} ({frame.name})"
    return "unknown"


class HostSyncWatch(Callback):
    """Counts host syncs in the training iterations where none should happen (see the module docstring).

    Args:
        cuda_errors: on a CUDA device, also run those iterations under ``torch.cuda.set_sync_debug_mode("error")``.
        skip_first: iterations at the start that are not watched (warm-up work: the first batch's checks,
            lazily built state).
        report: a JSON file to write ``{"watched": ..., "violations": [...]}`` to when training ends or fails
            (for runs in another process, e.g. ``python -m ganzoo.train +callbacks.watch=...``).

    Attributes:
        violations: one line per host sync found.
        watched: the number of iterations watched.
    """

    def __init__(self, cuda_errors: bool = False, skip_first: int = 1, report: str | None = None) -> None:
        self.cuda_errors = cuda_errors
        self.skip_first = skip_first
        self.report = report
        self.violations: list[str] = []
        self.watched = 0
        self._step: int | None = None  # the watched iteration's number while watching, else None
        self._paused = 0
        self._originals: dict[str, Callable[..., Any] | None] = {}  # None: inherited, not in Tensor's own dict
        self._original_next: Callable[..., Any] | None = None
        self._original_iter: Callable[..., Any] | None = None
        self._batches_seen = 0

    # ------------------------------------------------------------------------------------------ patching
    def _install(self) -> None:
        for name in WATCHED_METHODS:
            original = getattr(torch.Tensor, name)
            self._originals[name] = torch.Tensor.__dict__.get(name)
            setattr(torch.Tensor, name, self._wrap(name, original))
        self._original_next = dataloader._BaseDataLoaderIter.__next__
        self._original_iter = dataloader.DataLoader.__iter__
        watch = self

        @functools.wraps(self._original_next)
        def unwatched_next(iterator: Any) -> Any:
            with watch.paused():
                return watch._original_next(iterator)  # type: ignore[misc]

        @functools.wraps(self._original_iter)
        def unwatched_iter(loader: Any) -> Any:
            with watch.paused():
                return watch._original_iter(loader)  # type: ignore[misc]

        dataloader._BaseDataLoaderIter.__next__ = unwatched_next
        dataloader.DataLoader.__iter__ = unwatched_iter

    def _uninstall(self) -> None:
        for name, original in self._originals.items():
            if original is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, original)
        self._originals = {}
        if self._original_next is not None:
            dataloader._BaseDataLoaderIter.__next__ = self._original_next
            dataloader.DataLoader.__iter__ = self._original_iter
            self._original_next = self._original_iter = None
        self._stop_watching()

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        watch = self

        @functools.wraps(original)
        def counted(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if watch._step is not None and not watch._paused and (name != "to" or _moves_to_host(tensor, args, kwargs)):
                stack = traceback.extract_stack(limit=6)[:-1]
                # torch's optimizers keep their step counters on the host (unless capturable), by design.
                if not any(os.path.abspath(f.filename).startswith(_TORCH_OPTIM) for f in stack):
                    watch.violations.append(f"step {watch._step}: Tensor.{name} at {_call_site()}")
            return original(tensor, *args, **kwargs)

        return counted

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Work inside this block is not watched (and runs without the CUDA sync errors)."""
        self._paused += 1
        self._set_cuda_mode(False)
        try:
            yield
        finally:
            self._paused -= 1
            self._set_cuda_mode(self._step is not None and not self._paused)

    def _set_cuda_mode(self, on: bool) -> None:
        if self.cuda_errors and torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("error" if on else "default")

    def _stop_watching(self) -> None:
        self._step = None
        self._set_cuda_mode(False)

    # ------------------------------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._batches_seen = 0
        self._install()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._stop_watching()  # the previous iteration ends here
        self._batches_seen += 1
        if self._batches_seen > self.skip_first and not self._due(trainer, trainer.global_step + 1, batch_idx):
            self._step = trainer.global_step + 1
            self.watched += 1
            self._set_cuda_mode(True)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._uninstall()
        self._write_report()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, RuntimeError) and self._step is not None and "synchroniz" in str(exception):
            self.violations.append(f"step {self._step}: CUDA sync error: {str(exception).splitlines()[0]}")
        self._uninstall()
        self._write_report()

    def _write_report(self) -> None:
        if self.report:
            with open(self.report, "w") as f:
                json.dump({"watched": self.watched, "violations": self.violations}, f, indent=1)

    @staticmethod
    def _due(trainer: Trainer, step: int, batch_idx: int) -> bool:
        """Whether iteration ``step`` (about to run, batch ``batch_idx`` of its epoch) writes logs, samples,
        evaluates or saves a checkpoint, or is the run's last."""
        every = trainer.log_every_n_steps
        if every > 0 and (batches_stepped(trainer) + 1) % every == 0:
            return True
        if trainer.max_steps > 0 and step >= trainer.max_steps:
            return True
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        if 0 < max_epochs <= trainer.current_epoch + 1 and batch_idx + 1 >= trainer.num_training_batches:
            return True
        for callback in trainer.callbacks:
            if acts_at(callback, step):  # sheets, evaluation
                return True
            every = getattr(callback, "_every_n_train_steps", 0)  # ModelCheckpoint
            if isinstance(every, int) and every > 0 and step % every == 0:
                return True
        return False
