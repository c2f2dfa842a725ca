"""Preemption: on SIGTERM, finish the iteration, write ``last.ckpt`` and exit with a code that asks for a requeue."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ganzoo.callbacks.checkpoint import save_last_checkpoint
from ganzoo.compat import (
    call_after_signal_registration,
    disable_sigterm_broadcast,
    signal_handlers_restored_at_teardown,
    stop_calling_after_signal_registration,
)
from ganzoo.distributed import all_reduce, host_group, world_size

log = logging.getLogger(__name__)

#: 128 + SIGTERM (15): what a shell reports for a process ended by SIGTERM, so schedulers and wrapper scripts
#: see "terminated", not "failed" (exit 1) or "finished" (exit 0).
PREEMPTED_EXIT_CODE = 143


class Preempted(SIGTERMException):
    """Training stopped at a step boundary after a termination signal, its state saved (``SystemExit(code)``)."""


class PreemptionCheckpoint(Callback):
    """On SIGTERM (a scheduler's preemption or time limit, ``kill``, ``docker stop``), let the current iteration
    finish, write ``last.ckpt`` through the run's :class:`GANCheckpoint` (the same full state as any checkpoint:
    weights, optimizers, step, loops, data position, noise streams; written atomically), log where it is and
    exit with ``exit_code`` (143 by default). ``ckpt_path=last`` with the same run directory resumes from it.

    The signal handler only sets a flag; the decision is taken at the end of the iteration. Under DDP the flag
    is all-reduced there, so every process saves and stops at the same step even when only one of them got the
    signal (``kill <pid>`` of rank 0; SLURM signals them all): no process is left waiting in a collective. The
    reduction runs on the host over a CPU (gloo) group, so no process waits for its GPU at each iteration. The
    processes rank 0 started itself (Lightning's launcher) exit 0 so that it does not kill the group; the
    run's status is rank 0's.

    It replaces Lightning's own SIGTERM handling for the fit (which stops without saving and exits 0, and under
    DDP broadcasts from inside the signal handler). Lightning's SLURM auto-requeue on SIGUSR1 is left alone.

    Args:
        exit_code: exit status after a save (143 = 128 + SIGTERM).
        signals: the signals that mean "save and stop", by name.
    """

    def __init__(self, exit_code: int = PREEMPTED_EXIT_CODE, signals: Sequence[str] = ("SIGTERM",)) -> None:
        self.exit_code = exit_code
        self.signals = [signal.Signals[name if name.startswith("SIG") else f"SIG{name}"] for name in signals]
        self.received: signal.Signals | None = None
        self._active = False
        self._previous: dict[signal.Signals, Any] = {}
        self._hooked = False  # whether the trainer calls _install after registering its own handlers
        self._host_group: Any = None  # the process group the stop flag is reduced over (None: the default one)

    # ------------------------------------------------------------------------------ handlers
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of the main thread: no logging (not reentrant), no collectives.
        if self._active:
            if self.received is None:
                self.received = signal.Signals(signum)
            return
        # Left installed after the fit (Lightning's teardown re-registers the handlers it found, ours included):
        # behave as the handler before ours would have.
        previous = self._previous.get(signal.Signals(signum), signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; Lightning's stay in place
        for sig in self.signals:
            current = signal.getsignal(sig)
            if current != self._on_signal:
                self._previous.setdefault(sig, current)
                signal.signal(sig, self._on_signal)

    def _uninstall(self, trainer: Trainer) -> None:
        self._active = False
        if self._hooked:
            stop_calling_after_signal_registration(trainer)
            # After an exception Lightning's teardown comes after on_exception and re-registers the handlers it
            # found when it registered its own: ours. Make it restore the ones from before the fit instead.
            originals = signal_handlers_restored_at_teardown(trainer)
            if originals is not None:
                for sig, handler in self._previous.items():
                    if originals.get(sig) == self._on_signal:
                        originals[sig] = handler
            self._hooked = False
        if threading.current_thread() is threading.main_thread():
            for sig, handler in self._previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.received = None
        self._active = True
        self._previous = {}
        self._install()
        if world_size() > 1:
            # Every process runs setup: the collective creation of a CPU (gloo) group for the per-iteration flag,
            # unless the run's own group already is one (CPU DDP).
            self._host_group = host_group()
            # This callback takes SIGTERM over from Lightning, whose loop would otherwise broadcast its own (never
            # set) flag from the device every iteration, making every process wait for its GPU.
            disable_sigterm_broadcast(trainer)
        # Lightning registers its SIGTERM handler just before the loops start (after on_fit_start) and would
        # chain ours behind its own; put ours back right after it, before DataLoader workers fork with a copy.
        self._hooked = call_after_signal_registration(trainer, self._install)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._install()  # in case the Lightning internals above change

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._uninstall(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._uninstall(trainer)  # Lightning skips the teardown hooks after an exception

    # ----------------------------------------------------------------------------- stopping
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        stop = self.received is not None
        if world_size() > 1:
            # On the host, through the CPU group: GPU processes agree without waiting for their devices.
            flag = all_reduce(torch.tensor([int(stop)], dtype=torch.int32), "max", group=self._host_group)
            stop = bool(flag[0])
        if stop:
            self._save_and_exit(trainer)

    def _save_and_exit(self, trainer: Trainer) -> None:
        path = self._save(trainer)
        if trainer.is_global_zero:
            what = self.received.name if self.received is not None else f"{self.signals[0].name} (to another process)"
            saved = f"saved {path}" if path else "no checkpoint written (checkpointing is off)"
            log.warning(
                "%s at step %d: %s; resume with the same command plus hydra.run.dir=%s ckpt_path=last (exit code %d)",
                what,
                trainer.global_step,
                saved,
                trainer.default_root_dir,
                self.exit_code,
            )
        started_by_rank_zero = trainer.local_rank > 0 and isinstance(
            getattr(trainer.strategy, "cluster_environment", None), LightningEnvironment
        )
        raise Preempted(0 if started_by_rank_zero else self.exit_code)

    def _save(self, trainer: Trainer) -> str:
        """Write last.ckpt for this step; every process takes part (the save has collectives)."""
        return save_last_checkpoint(trainer)
