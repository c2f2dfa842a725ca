"""IterationProgressBar in real tiny fits, drawn on a rich console that writes into a string: what a log file gets
(the final state, once), what a terminal gets (redraws at ``refresh_per_second``, values read at log steps), runs
measured in epochs, and the Trainer arguments that put the configured bar (or none) in place."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import IterationProgressBar
from ganzoo.callbacks.progress import progress_bar_arguments
from ganzoo.loggers import CSVLogger
from tests.builders import quiet_trainer, read_rows, tiny_dcgan

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Pause(Callback):
    """Sleeps after every iteration, so that a terminal bar redrawing many times a second shows each count."""

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(0.05)


def fit_with_bar(
    root: Path, bar: IterationProgressBar, callbacks: tuple[Callback, ...] = (), **settings: Any
) -> L.Trainer:
    """Train ``tiny_dcgan`` on 16 random images in batches of 4 (4 iterations per epoch) with ``bar``."""
    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(0)
    trainer = quiet_trainer(root, callbacks=[bar, *callbacks], enable_progress_bar=True, **settings)
    trainer.fit(tiny_dcgan(), DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=4))
    return trainer


def drawn_on(output: io.StringIO, terminal: bool) -> dict[str, Any]:
    return {"file": output, "force_terminal": terminal, "width": 100}


def frames(text: str, total: int) -> list[tuple[int, str]]:
    """(count, values line or "") of every state of the bar in ``text``, in order, terminal codes removed."""
    plain = ANSI.sub("", text)
    return [
        (int(count), values) for count, values in re.findall(rf"(\d+)/{total} [^\r\n]*it/s(?:\n(\w[^\r\n]*))?", plain)
    ]


def logged_values(root: Path) -> dict[int, str]:
    """The bar's values line for each row of ``<root>/csv/metrics.csv``: ``loss_d <4 digits>  loss_g <4 digits>``."""
    rows = [row for row in read_rows(root)[1] if row.get("train/loss_g")]
    return {
        int(row["step"]): f"loss_d {float(row['train/loss_d']):.4g}  loss_g {float(row['train/loss_g']):.4g}"
        for row in rows
    }


def test_a_log_file_gets_the_final_state_once_with_the_last_values(tmp_path: Path) -> None:
    output = io.StringIO()
    trainer = fit_with_bar(tmp_path, IterationProgressBar(console_kwargs=drawn_on(output, terminal=False)),
                           max_steps=3, log_every_n_steps=50)  # fmt: skip
    # The last iteration's values although it is off the log interval (the bar reads them at the run's end).
    values = trainer.callback_metrics
    last = f"loss_d {float(values['train/loss_d']):.4g}  loss_g {float(values['train/loss_g']):.4g}"
    assert frames(output.getvalue(), 3) == [(3, last)]
    assert output.getvalue().startswith("train ━") and "\x1b[" not in output.getvalue()


def test_a_terminal_is_redrawn_with_the_values_of_the_latest_log_step(tmp_path: Path) -> None:
    output = io.StringIO()
    bar = IterationProgressBar(refresh_per_second=200, console_kwargs=drawn_on(output, terminal=True))
    fit_with_bar(tmp_path, bar, (Pause(),), max_steps=4, log_every_n_steps=2, logger=CSVLogger(str(tmp_path)))
    shown = frames(output.getvalue(), 4)
    assert {count for count, _ in shown} == {0, 1, 2, 3, 4}  # every count, at 200 redraws a second
    logged = logged_values(tmp_path)
    assert sorted(logged) == [2, 4]
    # Values are read from the model at log steps only: iteration 3 still shows those of iteration 2. (A redraw
    # between a log step's new values and its new count shows them beside the count before.)
    expected = {0: {""}, 1: {"", logged[2]}, 2: {logged[2]}, 3: {logged[2], logged[4]}, 4: {logged[4]}}
    assert all(values in expected[count] for count, values in shown), shown


def test_refresh_per_second_limits_the_redraws(tmp_path: Path) -> None:
    output = io.StringIO()
    bar = IterationProgressBar(refresh_per_second=0.01, console_kwargs=drawn_on(output, terminal=True))
    fit_with_bar(tmp_path, bar, (Pause(),), max_steps=4, log_every_n_steps=2)
    # Less than one redraw per run: the first state and the final one.
    assert [count for count, _ in frames(output.getvalue(), 4)] == [0, 4]


def test_a_run_in_epochs_counts_epochs_times_batches_and_names_the_epoch(tmp_path: Path) -> None:
    output = io.StringIO()
    fit_with_bar(tmp_path, IterationProgressBar(console_kwargs=drawn_on(output, terminal=False)),
                 max_steps=-1, max_epochs=2, log_every_n_steps=50)  # fmt: skip
    assert [count for count, _ in frames(output.getvalue(), 8)] == [8]  # 2 epochs of 4 batches
    assert output.getvalue().startswith("epoch 2/2 ━")


def test_trainer_arguments_put_the_configured_bar_in_place_or_none(tmp_path: Path) -> None:
    bar = IterationProgressBar()
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, **progress_bar_arguments([bar]))
    assert trainer.progress_bar_callback is bar
    # No bar configured (callbacks.progress_bar=null): no bar at all, not Lightning's default one.
    assert (
        L.Trainer(default_root_dir=tmp_path, logger=False, **progress_bar_arguments([])).progress_bar_callback is None
    )
    # A trainer config's enable_progress_bar=false removes the configured bar rather than clashing with it.
    arguments = progress_bar_arguments([bar], enable_progress_bar=False)
    assert arguments == {"callbacks": [], "enable_progress_bar": False}
    assert L.Trainer(default_root_dir=tmp_path, logger=False, **arguments).progress_bar_callback is None
