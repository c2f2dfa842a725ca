"""WritableRunDir, the Hydra callback of ``conf/hydra/default.yaml``, on the train config as Hydra composes it: a
run or sweep directory that cannot be written is one ``error:`` line naming it and the override, and exit 1;
one that can be written passes and is not created early."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganzoo.callbacks.run_dir import WritableRunDir
from ganzoo.cli import CONFIG_DIR


def train_config(*overrides: str) -> DictConfig:
    """The config of ``python -m ganzoo.train <overrides>``, Hydra's own part included."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def registered(config: DictConfig) -> WritableRunDir:
    """The callback as Hydra builds it from the config."""
    callback = instantiate(config.hydra.callbacks.writable_run_dir)
    assert isinstance(callback, WritableRunDir)
    return callback


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file: no folder can be created below it, not even by root (for whom permissions do not count)."""
    path = tmp_path / "afile"
    path.write_text("a file, not a folder")
    return path


def test_a_writable_run_dir_passes_and_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "runs" / "one"
    config = train_config(f"hydra.run.dir={run_dir}")
    registered(config).on_run_start(config)
    assert not (tmp_path / "runs").exists()  # Hydra creates it later; the probe leaves nothing behind
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == ""


def test_an_unwritable_run_dir_is_one_error_line_and_exit_1(blocker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = blocker / "run"
    config = train_config(f"hydra.run.dir={run_dir}")
    with pytest.raises(SystemExit) as exit_:
        registered(config).on_run_start(config)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        f"error: the run directory {run_dir} cannot be written: {blocker} is a file, not a folder; "
        "pass hydra.run.dir=<a writable folder>\n"
    )
    assert blocker.read_text() == "a file, not a folder"


def test_a_multirun_checks_the_sweep_dir(blocker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = blocker / "sweep"
    # The run directory is unwritable as well: a multirun checks only its own.
    config = train_config(f"hydra.sweep.dir={sweep_dir}", f"hydra.run.dir={blocker / 'run'}")
    with pytest.raises(SystemExit) as exit_:
        registered(config).on_multirun_start(config)
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip().endswith("; pass hydra.sweep.dir=<a writable folder>")
    writable = train_config(f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.run.dir={blocker / 'run'}")
    registered(writable).on_multirun_start(writable)


def test_a_directory_only_hydras_job_can_resolve_is_left_to_hydra(capsys: pytest.CaptureFixture[str]) -> None:
    config = OmegaConf.create({"hydra": {"run": {"dir": "${unknown_resolver:x}"}, "sweep": {"dir": None}}})
    WritableRunDir().on_run_start(config)
    WritableRunDir().on_multirun_start(config)  # no sweep directory at all: nothing to check
    assert capsys.readouterr().err == ""
