"""What a run leaves in ``csv/metrics.csv``: one step numbering, the last iteration logged even off the
``log_every_n_steps`` grid, continued on resume and started over by a run from scratch (``MetricsLog``), in runs of
``ganzoo.train.train`` in this process and, callback and logger alone, in a bare tiny Trainer (the console of
``python -m ganzoo.train``: tests/cli/test_logs.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import GANCheckpoint, MetricsLog
from ganzoo.loggers import CSVLogger
from tests.builders import quiet_trainer, read_rows, steps_of, tiny_dcgan
from tests.conftest import QUIET, TINY

Train = Callable[..., dict[str, float]]

BAR_ON = "callbacks.progress_bar={_target_:ganzoo.callbacks.IterationProgressBar}"

pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


@pytest.mark.parametrize("bar", [False, True], ids=["no-bar", "bar"])
def test_run_shorter_than_the_log_interval_has_its_metrics_file(
    bar: bool, train_in_process: Train, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    overrides = ["~metrics", "trainer.max_steps=2", "trainer.log_every_n_steps=50", "callbacks.progress_bar=null"]
    train_in_process(run_dir, *QUIET, *TINY, *overrides, *([BAR_ON] if bar else []))
    _, rows = read_rows(run_dir)
    # The last iteration is logged although it is not on the log_every_n_steps grid.
    assert steps_of(rows, "train/loss_g") == [2]
    captured = capfd.readouterr()
    output = captured.out + captured.err
    if bar:  # the bar's final state, printed once: what the test without one must not see
        assert re.search(r"\b2/2\b", output) and "━" in output, output
    else:
        assert not re.search(r"\b2/2\b", output) and "━" not in output, output  # not even Lightning's default


def test_resume_appends_to_metrics_file(
    train_in_process: Train, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    # First part: 3 iterations without evaluation; checkpoints at 2 and (last.ckpt) 3.
    train_in_process(run_dir, *QUIET, *TINY, "~metrics", "trainer.max_steps=3")
    _, first = read_rows(run_dir)
    assert steps_of(first, "train/loss_g") == [1, 2, 3]
    # The run died after logging step 3 but before saving it: the newest checkpoint is step 2.
    (run_dir / "checkpoints" / "last.ckpt").unlink()

    # Second part, resumed in the same directory, with evaluation (new columns): up to step 4. The evaluator
    # classifier trains one epoch and only FID is computed: the columns are what counts here, not their values.
    evaluation = ("metrics.evaluation.extractor.epochs=1", "metrics.evaluation.metrics=[fid]")
    with caplog.at_level(logging.INFO, logger="ganzoo"):
        train_in_process(run_dir, *QUIET, *TINY, *evaluation, "trainer.max_steps=4", "ckpt_path=last")
    assert "resuming from" in caplog.text
    header, rows = read_rows(run_dir)
    # Rows up to the resumed step stay, the abandoned step 3 is trained and logged again, once.
    assert steps_of(rows, "train/loss_g") == [1, 2, 3, 4]
    assert [r["train/loss_g"] for r in rows if r["step"] in ("1", "2") and r.get("train/loss_g")] == [
        r["train/loss_g"] for r in first if r["step"] in ("1", "2")
    ]
    assert steps_of(rows, "val/fid_fmnist") == [4]
    assert {"train/loss_g", "val/fid_fmnist", "step"} <= set(header)  # the header is the union of both parts
    assert header == sorted(header)


def test_run_from_scratch_in_an_old_run_dir_starts_the_file_over(train_in_process: Train, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_in_process(run_dir, *QUIET, *TINY, "~metrics", "trainer.max_steps=3")
    train_in_process(run_dir, *QUIET, *TINY, "~metrics", "trainer.max_steps=2")
    _, rows = read_rows(run_dir)
    assert steps_of(rows, "train/loss_g") == [1, 2]


def fit_logged(root: Path, callbacks: list[Callback], ckpt_path: str | None = None, **settings: Any) -> L.Trainer:
    """Train ``tiny_dcgan`` on 16 random images in batches of 4 (4 iterations per epoch), logging to
    ``<root>/csv/metrics.csv``."""
    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(0)
    logger = CSVLogger(save_dir=str(root))
    trainer = quiet_trainer(root, callbacks=callbacks, logger=logger, **settings)
    trainer.fit(tiny_dcgan(), DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=4), ckpt_path=ckpt_path)
    return trainer


def logged(root: Path, key: str = "train/loss_g") -> list[tuple[int, str]]:
    """(step, value) of the rows of ``<root>/csv/metrics.csv`` holding ``key``."""
    return [(int(row["step"]), row[key]) for row in read_rows(root)[1] if row.get(key)]


@pytest.mark.parametrize("run", ["max_steps", "max_epochs"])
def test_the_last_iteration_is_logged_off_the_log_interval(run: str, tmp_path: Path) -> None:
    length = {"max_steps": 3} if run == "max_steps" else {"max_steps": -1, "max_epochs": 1}
    fit_logged(tmp_path / "with", [MetricsLog()], log_every_n_steps=50, **length)
    assert [step for step, _ in logged(tmp_path / "with")] == [3 if run == "max_steps" else 4]
    fit_logged(tmp_path / "without", [], log_every_n_steps=50, **length)  # Lightning alone logs no row
    assert logged(tmp_path / "without") == []


def test_a_resumed_run_continues_the_file_from_its_checkpoint(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    saving = GANCheckpoint(dirpath=checkpoints, filename="step_{step}", every_n_train_steps=2, save_last=True)
    fit_logged(tmp_path, [MetricsLog(), saving], max_steps=3, log_every_n_steps=1, enable_checkpointing=True)
    first = logged(tmp_path)
    assert [step for step, _ in first] == [1, 2, 3]
    # Resumed from step 2: the rows of steps 1 and 2 stay, step 3 (logged after that checkpoint) is trained and
    # logged again, once.
    fit_logged(tmp_path, [MetricsLog()], ckpt_path=str(checkpoints / "step_step=2.ckpt"), max_steps=4,
               log_every_n_steps=1)  # fmt: skip
    resumed = logged(tmp_path)
    assert [step for step, _ in resumed] == [1, 2, 3, 4]
    assert resumed[:2] == first[:2]
    # A run from scratch in the same folder starts the file over.
    fit_logged(tmp_path, [MetricsLog()], max_steps=2, log_every_n_steps=1)
    assert logged(tmp_path) == first[:2]
