"""Fault injection for the fault-tolerance tests (never imported by ganzoo itself).

- :class:`PoisonWeights`: a callback that writes NaN into a generator weight after a given step, injected
  into a real training run from the command line::

      python -m ganzoo.train +callbacks.poison._target_=tests.faults.PoisonWeights +callbacks.poison.at_step=3

- :class:`RaiseAtStep`: a callback that raises an exception at the end of iteration ``at_step`` (or, with
  ``inside_step``, in the middle of the next iteration's training step: in its first backward pass)::

      python -m ganzoo.train +callbacks.boom._target_=tests.faults.RaiseAtStep +callbacks.boom.at_step=3

- :class:`BlockCheckpointFolder`: after iteration ``at_step``, replaces the run's checkpoint folder by a regular
  file of that name, so the next save fails with an OSError as on a full disk (a file in the way stops root too).

- ``python -m tests.faults save-loop``: a process that forks writers saving checkpoints to a path over and
  over, for the test to SIGKILL at chosen moments (one import of torch for any number of kills). Protocol,
  one line each: it prints ``ready``; each command ``<atomic|plain> <stall 0|1> <numel> <path>`` on stdin forks
  a writer (``child <pid>``) that saves versions 1, 2, ... of ``{"version": v, "payload": full(numel, v)}``
  and prints ``saved <v>`` after each; with stall=1 the writer stops in the middle of writing version 2
  (``stalled``) and waits to be killed. When the writer has died the loop prints ``exited <pid>``.
  ``atomic`` saves with :func:`ganzoo.checkpoint.save_atomic`, ``plain`` with ``torch.save`` to the path.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class PoisonWeights(Callback):
    """After iteration ``at_step``, set one element of the first generator weight to NaN: the next iteration's
    losses are NaN. Runs after ganzoo's non-finite guard, so step ``at_step`` itself still counts as good."""

    def __init__(self, at_step: int = 3, prefix: str = "generator") -> None:
        self.at_step = at_step
        self.prefix = prefix

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step != self.at_step:
            return
        name, weight = next((n, p) for n, p in pl_module.named_parameters() if n.startswith(self.prefix))
        with torch.no_grad():
            weight.view(-1)[0] = float("nan")


class RaiseAtStep(Callback):
    """Raise ``RuntimeError("boom at step N")`` at the end of iteration ``at_step`` (after the model's updates,
    before the checkpoint callbacks of that step). With ``inside_step`` it raises instead in the first backward
    pass of iteration ``at_step + 1``, inside the model's ``training_step``, after which its updates are partial."""

    def __init__(self, at_step: int = 3, inside_step: bool = False) -> None:
        self.at_step = at_step
        self.inside_step = inside_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if not self.inside_step and trainer.global_step == self.at_step:
            raise RuntimeError(f"boom at step {trainer.global_step}")

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        if self.inside_step and trainer.global_step == self.at_step:
            raise RuntimeError(f"boom inside iteration {trainer.global_step + 1}")


class BlockCheckpointFolder(Callback):
    """After iteration ``at_step``, move the checkpoint folder ``dirpath`` to ``<dirpath>.moved`` and put a regular
    file in its place: the next save there fails (``FileExistsError`` / ``NotADirectoryError``), like a full disk."""

    def __init__(self, dirpath: str, at_step: int = 3) -> None:
        self.dirpath = dirpath
        self.at_step = at_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step == self.at_step:
            os.replace(self.dirpath, f"{self.dirpath}.moved")
            with open(self.dirpath, "w") as f:
                f.write("not a folder")


class _StallingFile:
    """A file whose writes hang (until the process is killed) once ``after`` bytes have gone to disk."""

    def __init__(self, file: Any, after: int = 1) -> None:
        self.file = file
        self.after = after
        self.written = 0

    def write(self, data: Any) -> int:
        written = self.file.write(data)
        self.written += memoryview(data).nbytes
        if self.written >= self.after:
            self.file.flush()
            print("stalled", flush=True)
            time.sleep(3600)
        return written

    def flush(self) -> None:
        self.file.flush()


def _writer(mode: str, stall: bool, numel: int, path: str) -> None:
    """The forked writer: save versions 1, 2, ... forever (until killed)."""
    from ganzoo.checkpoint import save_atomic

    torch.set_num_threads(1)
    real_save = torch.save
    version = 0
    while True:
        version += 1
        if stall and version == 2:
            torch.save = lambda obj, f, *args, **kwargs: real_save(obj, _StallingFile(f), *args, **kwargs)
        obj = {"version": version, "payload": torch.full((numel,), float(version))}
        if mode == "atomic":
            save_atomic(obj, path)
        else:
            with open(path, "wb") as f:  # what torch.save(obj, path) does
                torch.save(obj, f)
        print(f"saved {version}", flush=True)


def save_loop() -> None:
    import ganzoo.checkpoint  # noqa: F401  (imported once here, inherited by every forked writer)

    print("ready", flush=True)
    for line in sys.stdin:
        mode, stall, numel, path = line.split()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                _writer(mode, stall == "1", int(numel), path)
            finally:
                os._exit(1)
        print(f"child {pid}", flush=True)
        os.waitpid(pid, 0)
        print(f"exited {pid}", flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["save-loop"]:
    save_loop()
