"""The training progress bar: iterations against the run's total, the latest losses and the latest evaluation."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks.progress import ProgressBar
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ganzoo.callbacks.evaluation import EvaluationCallback
from ganzoo.loop import writes_logs


class _Speed(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s", style="progress.data.speed")


class _ProgressWithValues(Progress):
    """A rich ``Progress`` with one line of values under its bar."""

    values = Text()

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        if self.values:
            yield self.values


def progress_bar_arguments(callbacks: list[Callback], enable_progress_bar: bool | None = None) -> dict[str, Any]:
    """The Trainer's ``callbacks`` and ``enable_progress_bar`` for a run whose bar is the one among ``callbacks``
    (``callbacks.progress_bar``): without one (null) there is no bar, rather than the default bar Lightning adds.
    ``enable_progress_bar=False`` (a trainer config's) removes a configured one: Lightning would refuse the pair."""
    if enable_progress_bar is False:
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    return {"callbacks": callbacks, "enable_progress_bar": any(isinstance(cb, ProgressBar) for cb in callbacks)}


def run_length(trainer: Trainer) -> int | None:
    """The iterations (generator updates) the run trains for: ``max_steps``, or for runs measured in epochs
    ``max_epochs`` x batches per epoch; None when unknown (an endless loader and no limit)."""
    if trainer.max_steps > 0:
        return trainer.max_steps
    batches = trainer.num_training_batches
    if trainer.max_epochs and trainer.max_epochs > 0 and batches != float("inf"):
        return int(trainer.max_epochs * batches)
    return None


def short_name(key: str) -> str:
    """``train/loss_g`` -> ``loss_g``, ``val/fid_fmnist`` -> ``fid_fmnist``: what fits next to a bar."""
    return key.rsplit("/", 1)[-1]


def _bar_values(trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
    """The values to show under the bar, by short name: the model's ``progress_bar_values`` from its step values
    (one host sync for all of them), else Lightning's progress-bar metrics."""
    names = getattr(pl_module, "progress_bar_values", None)
    values = getattr(pl_module, "step_values", None)
    if names is None or values is None:
        shown = trainer.progress_bar_metrics.items()
        return {short_name(k): float(v) for k, v in shown if isinstance(v, int | float) and k != "v_num"}
    present = [name for name in names if name in values]
    tensors = [name for name in present if isinstance(values[name], torch.Tensor)]
    read = torch.stack([values[n].reshape(()).float() for n in tensors]).tolist() if tensors else []
    numbers = dict(zip(tensors, read, strict=True))
    return {short_name(n): float(numbers[n] if n in numbers else values[n]) for n in present}


class IterationProgressBar(ProgressBar):
    """One bar for the whole run: ``123/1500`` generator updates (``trainer.max_steps``; runs measured in epochs
    count ``max_epochs`` x batches per epoch and show the epoch too), elapsed and remaining time, iterations per
    second, and under it the model's progress-bar values (a ganzoo model's ``progress_bar_values``, e.g.
    ``loss_d``, ``loss_g``; for other LightningModules what they log with ``prog_bar=True``) and the latest value
    of the evaluation's monitor (e.g. ``fid_fmnist``).

    The values are read from the device only at iterations whose values are written (every
    ``trainer.log_every_n_steps`` and the last one), so the bar adds no device synchronisation to the other
    steps; between those it only moves the count, at most ``refresh_per_second`` times a second. On a terminal it redraws
    ``refresh_per_second`` times a second and log lines are printed above it; in a file or pipe (a batch job's
    log) only its final state is printed, once.

    Args:
        refresh_per_second: redraws per second on a terminal.
        console_kwargs: arguments for the ``rich.console.Console`` it draws on (e.g. ``{force_terminal: true}``,
            ``{stderr: true}``).
    """

    def __init__(self, refresh_per_second: float = 4.0, console_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.refresh_per_second = refresh_per_second
        self.console_kwargs = dict(console_kwargs or {})
        self._enabled = True
        self._progress: _ProgressWithValues | None = None
        self._task: TaskID | None = None
        self._values: dict[str, float] = {}  # the model's progress-bar values
        self._evaluated: dict[str, float] = {}  # the evaluation's monitor
        self._by_epochs = False
        self._next_redraw = 0.0
        self._redirected: list[tuple[logging.StreamHandler, Any]] = []

    # Lightning's ProgressBar interface: disabled on DDP ranks other than 0 and while tuners run.
    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.console.print(*args, **kwargs)
        else:
            print(*args, **kwargs)

    # ------------------------------------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.is_disabled:
            return
        self._stop()
        console = Console(**self.console_kwargs)
        self._progress = _ProgressWithValues(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("•"),
            TimeRemainingColumn(),
            _Speed(),
            console=console,
            auto_refresh=console.is_terminal,
            refresh_per_second=self.refresh_per_second,
        )
        self._progress.values = Text()
        total = run_length(trainer)
        self._by_epochs = trainer.max_steps <= 0 and total is not None
        self._values, self._evaluated = {}, {}
        self._task = self._progress.add_task(self._description(trainer), total=total, completed=trainer.global_step)
        self._progress.start()
        self._redirect_log_handlers()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._progress is not None and self._task is not None and self._by_epochs:
            self._progress.update(self._task, description=self._description(trainer))

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._progress is None or self._task is None:
            return
        step = trainer.global_step
        if writes_logs(trainer, batch_idx):
            self._values.update(_bar_values(trainer, pl_module))
        elif time.monotonic() < self._next_redraw:
            return  # the count only: rich's update costs more than a small GPU step
        self._next_redraw = time.monotonic() + 1.0 / max(self.refresh_per_second, 1e-3)
        self._show(trainer, step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._progress is not None and self._task is not None:
            self._show(trainer, trainer.global_step)  # with the evaluation at the end of training
        self._stop()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._stop()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._stop()

    # ------------------------------------------------------------------------------------------------ parts
    def _description(self, trainer: Trainer) -> str:
        if self._by_epochs:
            return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        return "train"

    def _show(self, trainer: Trainer, step: int) -> None:
        # The evaluation's own record (host floats), not trainer.callback_metrics: nothing to read from a device.
        for evaluation in (cb for cb in trainer.callbacks if isinstance(cb, EvaluationCallback)):
            if evaluation.monitor and evaluation.history:
                value = evaluation.history[-1][1].get(evaluation.monitor)
                if value is not None and math.isfinite(value):
                    self._evaluated[short_name(evaluation.monitor)] = value
        assert self._progress is not None and self._task is not None
        shown = {**self._values, **self._evaluated}
        self._progress.values = Text("  ".join(f"{name} {value:.4g}" for name, value in shown.items()))
        self._progress.update(self._task, completed=step)

    def _redirect_log_handlers(self) -> None:
        """On a terminal, send log lines written to stdout/stderr through the bar's console, which prints them
        above the bar instead of through it."""
        if self._progress is None or not self._progress.console.is_terminal:
            return
        originals = {id(sys.__stdout__): sys.stdout, id(sys.__stderr__): sys.stderr}
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and id(handler.stream) in originals:
                self._redirected.append((handler, handler.stream))
                handler.setStream(originals[id(handler.stream)])

    def _stop(self) -> None:
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected = []
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None

    def __getstate__(self) -> dict[str, Any]:
        # Rich objects hold locks and threads: a pickled callback (DDP spawn) starts without them.
        state = self.__dict__.copy()
        state.update(_progress=None, _task=None, _redirected=[])
        return state
