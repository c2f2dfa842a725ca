"""GANCheckpoint and BestCheckpoint in real tiny fits: ``last.ckpt`` at the final step between two save intervals
(a resumed run continues inside the epoch), ``best.ckpt`` following the monitor (the value at the end of training
included), and the folder check: an unwritable ``dirpath`` is one error naming the override that fixes it, before
the first iteration (an unwritable run directory, checked by Hydra's callback: tests/cli/test_fault_tolerance.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback, LightningModule
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import BestCheckpoint, GANCheckpoint
from ganzoo.checkpoint import load_checkpoint_file
from ganzoo.errors import CheckpointError
from tests.builders import quiet_trainer, tiny_dcgan
from tests.conftest import QUIET, TINY

pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


def test_unwritable_checkpoint_folder_is_one_line_before_any_training(
    train_in_process: Callable[..., dict[str, float]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A path below a regular file cannot be created by anyone, root included (the tests may run as root, for whom
    # a chmod-protected folder is writable).
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    run_dir = tmp_path / "run"
    named, fix = str(blocker / "ckpts"), "pass callbacks.model_checkpoint.dirpath=<a writable folder>"
    common = (*QUIET, *TINY, "~metrics", "trainer.max_steps=2")
    with caplog.at_level(logging.INFO), pytest.raises(CheckpointError) as error:
        train_in_process(run_dir, *common, f"callbacks.model_checkpoint.dirpath={named}")
    message = str(error.value)
    assert "\n" not in message
    assert named in message and f"{blocker} is a file, not a folder" in message and fix in message, message
    output = capfd.readouterr()
    assert "train/loss" not in output.out + output.err + caplog.text  # stopped before the first iteration
    assert blocker.read_text() == "a file, not a folder"
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "samples").exists()
    # The suggested override works.
    fixed = fix.removeprefix("pass ").replace("<a writable folder>", str(tmp_path / "ckpts"))
    train_in_process(run_dir, *common, fixed)
    assert load_checkpoint_file(tmp_path / "ckpts" / "last.ckpt")["global_step"] == 2


class LoopPosition(Callback):
    """Records (epoch, batch index) of every iteration."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        self.seen.append((trainer.current_epoch, batch_idx))


class PublishedMetric(Callback):
    """Puts ``values[step]`` into ``trainer.callback_metrics`` under ``key`` after iteration ``step``, as an
    evaluation does (``values["end"]``: at the end of training)."""

    def __init__(self, values: dict[int | str, float], key: str = "val/score") -> None:
        self.values = values
        self.key = key

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step in self.values:
            trainer.callback_metrics[self.key] = torch.tensor(self.values[trainer.global_step])

    def on_train_end(self, trainer: L.Trainer, pl_module: LightningModule) -> None:
        if "end" in self.values:
            trainer.callback_metrics[self.key] = torch.tensor(self.values["end"])


def fit_with(
    root: Path, callbacks: list[Callback], ckpt_path: str | None = None, model: LightningModule | None = None,
    **settings: Any,
) -> L.Trainer:  # fmt: skip
    """Train ``tiny_dcgan`` (16 px, grey) on 16 random images in batches of 4 (4 iterations per epoch)."""
    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(0)
    trainer = quiet_trainer(root, callbacks=callbacks, enable_checkpointing=True, **settings)
    trainer.fit(model or tiny_dcgan(), DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=4),
                ckpt_path=ckpt_path)  # fmt: skip
    return trainer


def saved_step(path: Path) -> int:
    return load_checkpoint_file(path)["global_step"]


def periodic(folder: Path, every: int = 2) -> GANCheckpoint:
    return GANCheckpoint(
        dirpath=folder, filename="step_{step:07d}", auto_insert_metric_name=False, every_n_train_steps=every,
        save_top_k=-1, save_last=True,
    )  # fmt: skip


def test_last_ckpt_holds_max_steps_between_intervals_and_resumes_inside_the_epoch(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    fit_with(tmp_path, [periodic(folder)], max_steps=3)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step_0000002.ckpt"]
    assert saved_step(folder / "last.ckpt") == 3
    # Saved at the end of iteration 3, with the epoch still open: the resumed run trains the epoch's last batch
    # (index 3) before the next epoch, as the uninterrupted run does.
    position = LoopPosition()
    fit_with(tmp_path, [periodic(folder), position], ckpt_path=str(folder / "last.ckpt"), max_steps=5)
    assert position.seen == [(0, 3), (1, 0)]
    assert saved_step(folder / "last.ckpt") == 5


def test_a_run_measured_in_epochs_saves_last_ckpt_at_its_end(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    fit_with(tmp_path, [periodic(folder, every=3)], max_steps=-1, max_epochs=1)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step_0000003.ckpt"]
    assert saved_step(folder / "last.ckpt") == 4


def test_an_unwritable_folder_fails_before_the_first_iteration_naming_the_folder_and_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    folder = blocker / "ckpts"
    position = LoopPosition()
    with pytest.raises(CheckpointError) as error:
        fit_with(tmp_path, [periodic(folder), position], max_steps=2)
    assert str(error.value) == (
        f"cannot write checkpoints to {folder}: {blocker} is a file, not a folder; "
        "pass dirpath=<a writable folder> for this checkpoint callback"
    )
    assert position.seen == []
    # In a run of ganzoo.train the model carries the run's config: the message names its keys.
    model = tiny_dcgan()
    model.run_config = {
        "paths": {"output_dir": str(blocker)},
        "callbacks": {"model_checkpoint": {"dirpath": str(folder)}, "sample_grid": {"dirpath": str(tmp_path)}},
    }
    with pytest.raises(CheckpointError) as error:
        fit_with(tmp_path, [periodic(folder)], model=model, max_steps=2)
    assert str(error.value).endswith(
        "; pass hydra.run.dir=<a writable folder>, or callbacks.model_checkpoint.dirpath=<a writable folder>"
    )
    # A callback that keeps nothing does not need its folder.
    fit_with(tmp_path, [GANCheckpoint(dirpath=folder, save_top_k=0, save_last=False)], max_steps=1)


@pytest.mark.parametrize(("mode", "best"), [("min", 2), ("max", 1)])
def test_best_ckpt_follows_the_monitor(mode: str, best: int, tmp_path: Path) -> None:
    keep = BestCheckpoint(
        dirpath=tmp_path / "checkpoints", filename="best", monitor="val/score", mode=mode, every_n_train_steps=1
    )
    fit_with(tmp_path, [PublishedMetric({1: 5.0, 2: 3.0, 3: 4.0}), keep], max_steps=3)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.ckpt"]  # no last.ckpt
    assert saved_step(tmp_path / "checkpoints" / "best.ckpt") == best
    assert keep.best_model_score == {"min": 3.0, "max": 5.0}[mode]


@pytest.mark.parametrize(("final", "best"), [(1.0, 3), (4.0, 2)])
def test_best_ckpt_considers_the_value_at_the_end_of_training(final: float, best: int, tmp_path: Path) -> None:
    # Evaluations every 2 iterations and at the end of training (step 3, off the interval).
    keep = BestCheckpoint(dirpath=tmp_path / "checkpoints", filename="best", monitor="val/score", every_n_train_steps=2)
    fit_with(tmp_path, [PublishedMetric({2: 3.0, 3: final}), keep], max_steps=3)
    assert saved_step(tmp_path / "checkpoints" / "best.ckpt") == best


def test_best_ckpt_without_a_monitor_keeps_nothing(tmp_path: Path) -> None:
    keep = BestCheckpoint(dirpath=tmp_path / "checkpoints", filename="best", monitor=None, every_n_train_steps=1)
    assert not keep.applies_to(tiny_dcgan())
    assert BestCheckpoint(monitor="val/score").applies_to(tiny_dcgan())
    fit_with(tmp_path, [PublishedMetric({1: 1.0, 2: 2.0}), keep], max_steps=2)
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())
