"""FailureCheckpoint: an error mid-run that is not the model's saves ``last.ckpt`` at the last completed iteration
(never a half-updated step), says so in the error and in the run's log file, and the fixed run resumes exactly (in
this process; a bug's traceback through ``python -m ganzoo.train``: tests/cli/test_fault_tolerance.py)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ganzoo.callbacks import FailureCheckpoint
from ganzoo.checkpoint import load_checkpoint_file
from ganzoo.data.image_file import UnreadableImageError
from ganzoo.data.sampler import EpochShuffleSampler
from ganzoo.errors import CheckpointError
from tests.conftest import QUIET, TINY, fit_tiny_dcgan
from tests.data.writers import write_image_folder
from tests.faults import RaiseAtStep

Train = Callable[..., dict[str, float]]

pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)["state_dict"]


def test_corrupt_image_mid_run_saves_the_last_iteration_and_the_fixed_run_resumes_exactly(
    train_in_process: Train, run_log: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 40 images, batch 8: 5 iterations per epoch, in the order EpochShuffleSampler draws for seed 42. The corrupt
    # file is the first of batch 3, fetched when iteration 4 starts: the state to save is step 3's, which no
    # periodic checkpoint holds (they are every 2 iterations).
    folder = write_image_folder(tmp_path / "imgs", n=40, size=16)
    files = sorted(folder.glob("*.png"))
    bad = files[int(EpochShuffleSampler(len(files), seed=42).plan(0)[0][3 * 8])]
    common = (
        *QUIET,
        *TINY,
        "~metrics",
        "data=image_folder",
        f"data.data_dir={folder}",
        "data.image_size=16",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.max_steps=7",  # across the epoch boundary
    )
    train_in_process(tmp_path / "full", *common, data_dir=tmp_path)

    good = bad.read_bytes()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    run_dir = tmp_path / "run"
    with pytest.raises(UnreadableImageError) as error:
        train_in_process(run_dir, *common, data_dir=tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    message = str(error.value)
    assert "\n" not in message
    assert str(bad) in message and "remove or replace this file" in message, message
    assert f"the state at step 3 (the last completed iteration) is saved in {last}" in message, message
    assert f"resume with the same command plus hydra.run.dir={run_dir} ckpt_path=last" in message
    assert load_checkpoint_file(last)["global_step"] == 3
    assert sorted(os.listdir(last.parent)) == ["last.ckpt", "step_0000002.ckpt"]
    assert f"error: {message}" in run_log.read_text()  # the run's log has the error too

    # Fixed: the suggested command continues from step 3, and ends where the uninterrupted run ended.
    bad.write_bytes(good)
    with caplog.at_level(logging.INFO, logger="ganzoo"):
        train_in_process(run_dir, *common, "ckpt_path=last", data_dir=tmp_path)
    assert f"ckpt_path=last: resuming from {last} (step 3)" in caplog.text
    full, resumed = weights(tmp_path / "full" / "checkpoints" / "last.ckpt"), weights(last)
    assert load_checkpoint_file(last)["global_step"] == 7
    for name in full:
        assert torch.equal(full[name], resumed[name]), f"{name} differs from the uninterrupted run"


def test_failed_periodic_save_tries_last_ckpt_once_and_reports_both(
    train_in_process: Train, run_log: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    overrides = (
        *QUIET,
        *TINY,
        "~metrics",
        "trainer.max_steps=8",
        "+callbacks.full_disk._target_=tests.faults.BlockCheckpointFolder",
        f"+callbacks.full_disk.dirpath={checkpoints}",
        "+callbacks.full_disk.at_step=3",
    )
    with pytest.raises(CheckpointError) as error:
        train_in_process(run_dir, *overrides)
    message = str(error.value)
    assert "\n" not in message
    # The save at step 4 failed; last.ckpt was tried once and failed for the same reason; both are said.
    assert message.startswith(f"cannot write checkpoint {checkpoints / 'step_0000004.ckpt'} ("), message
    assert f"saving last.ckpt at step 4 failed too (cannot write checkpoint {checkpoints / 'last.ckpt'}" in message
    assert "callbacks.model_checkpoint.dirpath=<a writable folder>" in message
    assert f"error: {message}" in run_log.read_text()
    assert sorted(os.listdir(f"{checkpoints}.moved")) == ["last.ckpt", "step_0000002.ckpt"]  # nothing half-written


def test_error_inside_the_training_step_saves_no_half_updated_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Raised in iteration 4's first backward pass (D's): its updates are partial, so last.ckpt stays at step 2.
    with caplog.at_level(logging.WARNING, logger="ganzoo.callbacks.failure"), pytest.raises(RuntimeError):
        fit_tiny_dcgan(tmp_path, 8, [FailureCheckpoint(), RaiseAtStep(at_step=3, inside_step=True)])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert sorted(os.listdir(last.parent)) == ["last.ckpt", "step_step=2.ckpt"]
    assert load_checkpoint_file(last)["global_step"] == 2
    assert "the error came inside iteration 4, whose updates may be partly applied, so that state is not saved" in (
        caplog.text
    )
    assert f"the newest checkpoint is {last} (step 2)" in caplog.text
    # At a step boundary the same callback saves: last.ckpt at step 3.
    shutil.rmtree(last.parent)
    with pytest.raises(RuntimeError, match="boom at step 3"):
        fit_tiny_dcgan(tmp_path, 8, [FailureCheckpoint(), RaiseAtStep(at_step=3)])
    assert load_checkpoint_file(last)["global_step"] == 3
