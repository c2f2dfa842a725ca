"""Where a run resumes from: the newest readable checkpoint of its folders (``ckpt_path=last``, a run directory),
the same choice in every DDP process, and an error rather than a fresh start when none is readable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from ganzoo.checkpoint import RESUME_ENV, newest_checkpoint, resolve_resume, save_atomic
from ganzoo.errors import CheckpointError


def write_checkpoint(path: Path, step: int) -> Path:
    save_atomic({"global_step": step, "state_dict": {"w": torch.zeros(2)}}, path)
    return path


def test_newest_checkpoint_is_the_highest_step_then_last(tmp_path: Path) -> None:
    assert newest_checkpoint([tmp_path, tmp_path / "missing"]) is None
    write_checkpoint(tmp_path / "step_0000004.ckpt", 4)
    write_checkpoint(tmp_path / "last.ckpt", 4)
    write_checkpoint(tmp_path / "best.ckpt", 2)
    assert newest_checkpoint([tmp_path]) == (tmp_path / "last.ckpt", 4)  # a tie goes to last.ckpt
    # A crash after step_0000006 was written but before last.ckpt was: the newer state wins, whatever the mtime.
    os.utime(write_checkpoint(tmp_path / "step_0000006.ckpt", 6), (1, 1))
    (tmp_path / "last-v1.ckpt").write_bytes(b"PK\x03\x04 truncated")  # unreadable files are skipped
    (tmp_path / ".last.ckpt.host.123.tmp").write_bytes(b"partial")
    assert newest_checkpoint([tmp_path]) == (tmp_path / "step_0000006.ckpt", 6)


def test_only_unreadable_checkpoints_are_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="no readable checkpoint among .*last.ckpt"):
        newest_checkpoint([tmp_path])


def run_config(output_dir: Path, ckpt_path: str | None, max_steps: int = 10) -> DictConfig:
    """The keys of a ``python -m ganzoo.train`` config that resuming reads."""
    return OmegaConf.create(
        {
            "ckpt_path": ckpt_path,
            "paths": {"output_dir": str(output_dir)},
            "trainer": {"max_steps": max_steps},
            "callbacks": {
                "model_checkpoint": {
                    "_target_": "ganzoo.callbacks.GANCheckpoint",
                    "dirpath": str(output_dir / "ckpts"),
                },
                "sample_grid": {"_target_": "ganzoo.callbacks.SampleGrid", "dirpath": str(output_dir / "samples")},
            },
        }
    )


def test_ckpt_path_last_and_run_dirs_resolve_to_the_newest_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = tmp_path / "run"
    assert resolve_resume(run_config(run, "last")) == (None, False)  # first launch: from scratch
    monkeypatch.delenv(RESUME_ENV)
    # Searched: the checkpoint callbacks' folders (not the samples folder) and <run dir>/checkpoints.
    write_checkpoint(run / "samples" / "step_0000009.ckpt", 9)
    write_checkpoint(run / "ckpts" / "step_0000004.ckpt", 4)
    newest = write_checkpoint(run / "checkpoints" / "last.ckpt", 5)
    assert resolve_resume(run_config(run, "last")) == (str(newest), False)
    monkeypatch.delenv(RESUME_ENV)
    assert resolve_resume(run_config(tmp_path / "new", str(run))) == (str(newest), False)  # a run dir
    monkeypatch.delenv(RESUME_ENV)
    assert resolve_resume(run_config(run, "last", max_steps=5)) == (None, True)  # already complete
    explicit = str(run / "ckpts" / "step_0000004.ckpt")
    assert resolve_resume(run_config(run, explicit, max_steps=5)) == (explicit, False)  # a file: as given
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        resolve_resume(run_config(run, str(tmp_path / "empty")))


def test_ddp_processes_take_rank_zeros_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = tmp_path / "run"
    first = write_checkpoint(run / "checkpoints" / "step_0000002.ckpt", 2)
    assert resolve_resume(run_config(run, "last")) == (str(first), False)
    # Rank 0 has started its processes (they inherit the environment) and, say, saved a newer checkpoint
    # before one of them resolved ckpt_path: they still load what rank 0 loads.
    write_checkpoint(run / "checkpoints" / "step_0000004.ckpt", 4)
    assert resolve_resume(run_config(run, "last")) == (str(first), False)
    monkeypatch.delenv(RESUME_ENV)
    assert resolve_resume(run_config(run, "last"))[0] == str(run / "checkpoints" / "step_0000004.ckpt")
