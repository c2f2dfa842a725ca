"""RunSummary: the closing lines of a completed fit, read from the other callbacks of a real tiny Trainer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import BestCheckpoint, GANCheckpoint, InterpolationSheet, RunSummary, SampleGrid
from ganzoo.checkpoint import load_checkpoint_file
from tests.builders import quiet_trainer, tiny_dcgan

# Checkpoints of manual-optimization modules hold the state after the step, as ganzoo intends.
pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


class LowestLoss(Callback):
    """Keeps the lowest logged ``monitor`` after each iteration: a callback that keeps a best value
    (``monitor`` and ``best()``), as the evaluation does, without an evaluator to train."""

    def __init__(self, monitor: str = "train/loss_g") -> None:
        self.monitor = monitor
        self.history: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self.history.append((trainer.global_step, float(trainer.callback_metrics[self.monitor])))

    def best(self) -> tuple[int, float] | None:
        return min(self.history, key=lambda item: item[1]) if self.history else None


class FailAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"stopped at step {self.step}")


def fit(tmp_path: Path, *callbacks: Callback, steps: int = 3) -> Trainer:
    """Train a tiny DCGAN (16 px, 1 channel) for ``steps`` iterations on 32 random images in [-1, 1]."""
    torch.manual_seed(0)
    model = tiny_dcgan()
    data = DataLoader(TensorDataset(torch.rand(32, 1, 16, 16) * 2 - 1, torch.zeros(32)), batch_size=8)
    trainer = quiet_trainer(
        tmp_path, max_steps=steps, log_every_n_steps=1, enable_checkpointing=True, callbacks=list(callbacks)
    )
    trainer.fit(model, data)
    return trainer


def summary_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ganzoo.train"]


def run_callbacks(tmp_path: Path, sheets: tuple[str, ...] = ("samples", "translations")) -> list[Callback]:
    checkpoints = tmp_path / "checkpoints"
    return [
        LowestLoss(),
        GANCheckpoint(dirpath=checkpoints, filename="step_{step:07d}", every_n_train_steps=2, save_last=True),
        BestCheckpoint(dirpath=checkpoints, filename="best", monitor="train/loss_g", every_n_train_steps=1),
        SampleGrid(every_n_steps=2, num_samples=4, dirpath=str(tmp_path / "samples")),
        InterpolationSheet(every_n_steps=2, num_rows=2, num_steps=3, dirpath=str(tmp_path / "interp_z")),
        RunSummary(output_dir=str(tmp_path), sheets=sheets),
    ]


def test_completed_fit_logs_step_checkpoint_samples_and_best(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callbacks = run_callbacks(tmp_path)
    with caplog.at_level(logging.INFO, logger="ganzoo.train"):
        fit(tmp_path, *callbacks)
    best_step, best_loss = callbacks[0].best()
    best_file = tmp_path / "checkpoints" / "best.ckpt"
    # best.ckpt is the checkpoint of the step the summary names: the one kept for the same monitor.
    assert load_checkpoint_file(best_file)["global_step"] == best_step
    assert summary_lines(caplog) == [
        f"finished at step 3; outputs in {tmp_path}",
        f"checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'}",
        f"samples: {tmp_path / 'samples' / 'step_0000003.png'}",  # the interpolation sheet is not in `sheets`
        f"best train/loss_g = {best_loss:.4f} at step {best_step}; checkpoint: {best_file}",
    ]


def test_sheets_names_the_sheets_listed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ganzoo.train"):
        fit(tmp_path, *run_callbacks(tmp_path, sheets=("interp_z",)))
    assert [line for line in summary_lines(caplog) if line.startswith("samples: ")] == [
        f"samples: {tmp_path / 'interp_z' / 'step_0000003.png'}"
    ]


def test_without_checkpoints_or_best_value_only_the_step_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ganzoo.train"):
        fit(tmp_path, RunSummary(output_dir="outputs/here"), steps=2)
    # Lightning's default checkpoint callback keeps no last.ckpt; no sheet, nothing that keeps a best value.
    assert summary_lines(caplog) == ["finished at step 2; outputs in outputs/here"]


def test_failed_fit_logs_no_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ganzoo.train"), pytest.raises(RuntimeError, match="stopped at step 2"):
        fit(tmp_path, *run_callbacks(tmp_path), FailAtStep(2))
    assert summary_lines(caplog) == []
