"""Fault tolerance: checkpoints survive SIGKILL mid-save, SIGTERM saves and exits for a requeue, ``ckpt_path=last``
resumes the newest state, and a NaN loss stops the run with the last good checkpoint intact."""

from __future__ import annotations

import logging
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import FailureCheckpoint, GANCheckpoint, NonFiniteError, NonFiniteGuard, PreemptionCheckpoint
from ganzoo.callbacks.preemption import PREEMPTED_EXIT_CODE
from ganzoo.checkpoint import RESUME_ENV, load_checkpoint_file, newest_checkpoint, resolve_resume, save_atomic
from ganzoo.data.sampler import EpochShuffleSampler
from ganzoo.errors import CheckpointError
from ganzoo.models.dcgan import DCGAN
from ganzoo.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from tests.conftest import QUIET, REPO, cli_env, run_cli
from tests.data.writers import write_image_folder
from tests.faults import PoisonWeights, RaiseAtStep

# ------------------------------------------------------------------------------------------- end to end (CLI)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _train_until_sigterm(
    command: tuple[str, ...], run_dir: Path, env: dict[str, str], log_path: Path
) -> tuple[int, str]:
    """Start training, send SIGTERM once the step-2 sample grid exists; the step it saved and the output."""
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ganzoo.train", *command, "trainer.max_steps=100000"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            grid = run_dir / "samples" / "step_0000002.png"
            _wait_for(lambda: grid.exists() or proc.poll() is not None, 180, "training to reach step 2")
            assert proc.poll() is None, log_path.read_text()[-3000:]
            proc.send_signal(signal.SIGTERM)  # to rank 0 only, under DDP too
            sent = time.monotonic()
            proc.wait(timeout=60)
            stopped_after = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log_path.read_text()
    assert proc.returncode == PREEMPTED_EXIT_CODE == 143, out[-3000:]
    assert stopped_after < 30, stopped_after
    last = run_dir / "checkpoints" / "last.ckpt"
    said = re.search(
        r"SIGTERM at step (\d+): saved (\S+); resume with the same command plus hydra\.run\.dir=(\S+) ", out
    )
    assert said, out[-3000:]
    step = int(said[1])
    assert step >= 2 and Path(said[2]) == last and Path(said[3]) == run_dir
    assert sorted(os.listdir(last.parent)) == ["last.ckpt"]  # no interval checkpoints: the SIGTERM wrote it
    assert load_checkpoint_file(last)["global_step"] == step
    return step, out


def _requeue_command(run_dir: Path) -> tuple[str, ...]:
    # What a requeued job runs every time: a fixed run directory and ckpt_path=last. No interval checkpoints.
    return (
        *QUIET,
        "~metrics",
        "callbacks.model_checkpoint.every_n_train_steps=0",
        "callbacks.sample_grid.every_n_steps=2",
        f"hydra.run.dir={run_dir}",
        "ckpt_path=last",
    )


def test_sigterm_saves_last_ckpt_and_the_same_command_resumes_it(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir, env = tmp_path / "run", cli_env(tiny_data_dir)
    command = _requeue_command(run_dir)
    step, out = _train_until_sigterm(command, run_dir, env, tmp_path / "first.log")
    assert "ckpt_path=last: no checkpoint in" in out and "starting from scratch" in out  # the first launch

    # The requeue: the same command, here bounded to two more iterations. The samples folder is emptied to see
    # which grids the resumed run writes: its first one is at the saved step, none at step 0.
    shutil.rmtree(run_dir / "samples")
    proc = run_cli("train", *command, f"trainer.max_steps={step + 2}", env=env)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"ckpt_path=last: resuming from {last} (step {step})" in proc.stdout + proc.stderr
    assert load_checkpoint_file(last)["global_step"] == step + 2
    grids = sorted(p.name for p in (run_dir / "samples").glob("step_*.png"))
    assert grids[0] == f"step_{step:07d}.png" and grids[-1] == f"step_{step + 2:07d}.png", grids


def test_sigterm_to_rank_zero_stops_both_ddp_processes_at_one_step(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = ("trainer=ddp_cpu", *_requeue_command(run_dir))
    _, out = _train_until_sigterm(command, run_dir, cli_env(tiny_data_dir), tmp_path / "ddp.log")
    # Both ranks took part in the save (each rank's noise stream is in it) and exited: no rank was left behind.
    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["ganzoo"]["noise_states"].shape[0] == 2
    assert out.count("SIGTERM at step") == 1


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        *QUIET,
        "~metrics",
        "trainer.max_steps=8",
        "+callbacks.poison._target_=tests.faults.PoisonWeights",
        "+callbacks.poison.at_step=3",
        f"hydra.run.dir={run_dir}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # Weights poisoned after step 3; the losses of step 4 are the first NaNs.
    assert errors[0].startswith("error: non-finite loss at step 4: "), errors[0]
    assert re.search(r"train/loss_[dg]=nan", errors[0]), errors[0]
    assert f"the last good checkpoint is {last} (step 2)" in errors[0]
    # Checkpoints every 2 steps (debug=smoke): the one at step 2 is the last, and it is finite.
    assert sorted(os.listdir(last.parent)) == ["last.ckpt", "step_0000002.ckpt"]
    checkpoint = load_checkpoint_file(last)
    assert checkpoint["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())


def test_nan_loss_between_checks_is_caught_before_the_next_save_and_named(tiny_data_dir: Path, tmp_path: Path) -> None:
    # The guard reads losses from the device only where the run does something with its state: here no log step
    # (every 10) and no sheet comes before the checkpoint at step 5, so the NaN of step 4 is seen at that save.
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        *QUIET,
        "~metrics",
        "trainer.max_steps=12",
        "trainer.log_every_n_steps=10",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        "callbacks.sample_grid.every_n_steps=0",
        "callbacks.translation_grid.every_n_steps=0",
        "+callbacks.poison._target_=tests.faults.PoisonWeights",
        "+callbacks.poison.at_step=3",
        f"hydra.run.dir={run_dir}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    errors = _error_lines(proc)
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("error: non-finite loss at step 4, found at step 5: train/loss_"), errors[0]
    assert "no checkpoint was saved before it" in errors[0]
    assert not (run_dir / "checkpoints").exists() or not os.listdir(run_dir / "checkpoints")


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)["state_dict"]


def test_corrupt_image_mid_run_saves_the_last_iteration_and_the_fixed_run_resumes_exactly(tmp_path: Path) -> None:
    # 40 images, batch 8: 5 iterations per epoch, in the order EpochShuffleSampler draws for seed 42. The corrupt
    # file is the first of batch 3, fetched when iteration 4 starts: the state to save is step 3's, which no
    # periodic checkpoint holds (they are every 2 iterations).
    folder = write_image_folder(tmp_path / "imgs", n=40, size=16)
    files = sorted(folder.glob("*.png"))
    bad = files[int(EpochShuffleSampler(len(files), seed=42).plan(0)[0][3 * 8])]
    common = (
        *QUIET,
        "~metrics",
        "data=image_folder",
        f"data.data_dir={folder}",
        "data.image_size=16",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.max_steps=7",  # across the epoch boundary
    )
    env = cli_env(tmp_path)
    run_cli("train", *common, f"hydra.run.dir={tmp_path / 'full'}", env=env)

    good = bad.read_bytes()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    run_dir = tmp_path / "run"
    proc = run_cli("train", *common, f"hydra.run.dir={run_dir}", env=env, check=False)
    last = run_dir / "checkpoints" / "last.ckpt"
    errors = _error_lines(proc)
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert str(bad) in errors[0] and "remove or replace this file" in errors[0], errors[0]
    assert f"the state at step 3 (the last completed iteration) is saved in {last}" in errors[0], errors[0]
    assert f"resume with the same command plus hydra.run.dir={run_dir} ckpt_path=last" in errors[0]
    assert load_checkpoint_file(last)["global_step"] == 3
    assert sorted(os.listdir(last.parent)) == ["last.ckpt", "step_0000002.ckpt"]
    assert errors[0] in (run_dir / "train.log").read_text()  # the run's log has the error too

    # Fixed: the suggested command continues from step 3, and ends where the uninterrupted run ended.
    bad.write_bytes(good)
    proc = run_cli("train", *common, f"hydra.run.dir={run_dir}", "ckpt_path=last", env=env)
    assert f"ckpt_path=last: resuming from {last} (step 3)" in proc.stdout + proc.stderr
    full, resumed = _weights(tmp_path / "full" / "checkpoints" / "last.ckpt"), _weights(last)
    assert load_checkpoint_file(last)["global_step"] == 7
    for name in full:
        assert torch.equal(full[name], resumed[name]), f"{name} differs from the uninterrupted run"


def test_exception_in_a_callback_saves_its_step_and_goes_to_the_run_log(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        *QUIET,
        "~metrics",
        "trainer.max_steps=8",
        "+callbacks.boom._target_=tests.faults.RaiseAtStep",
        "+callbacks.boom.at_step=3",
        f"hydra.run.dir={run_dir}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    # Not a ganzoo error: a bug in a callback keeps its traceback, and the state is saved all the same.
    assert proc.returncode == 1 and "RuntimeError: boom at step 3" in proc.stderr, proc.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(last)["global_step"] == 3
    log = (run_dir / "train.log").read_text()
    said = "training stopped at step 3 by an unexpected RuntimeError (a bug: please report it with the traceback); "
    assert said + f"the state at step 3 (the last completed iteration) is saved in {last}" in log, log[-3000:]
    assert "RuntimeError: boom at step 3" in log  # the traceback, in the log file


def test_failed_periodic_save_tries_last_ckpt_once_and_reports_both(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    proc = run_cli(
        "train",
        *QUIET,
        "~metrics",
        "trainer.max_steps=8",
        "+callbacks.full_disk._target_=tests.faults.BlockCheckpointFolder",
        f"+callbacks.full_disk.dirpath={checkpoints}",
        "+callbacks.full_disk.at_step=3",
        f"hydra.run.dir={run_dir}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    errors = _error_lines(proc)
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # The save at step 4 failed; last.ckpt was tried once and failed for the same reason; both are said.
    assert errors[0].startswith(f"error: cannot write checkpoint {checkpoints / 'step_0000004.ckpt'} ("), errors[0]
    assert f"saving last.ckpt at step 4 failed too (cannot write checkpoint {checkpoints / 'last.ckpt'}" in errors[0]
    assert "callbacks.model_checkpoint.dirpath=<a writable folder>" in errors[0]
    assert errors[0] in (run_dir / "train.log").read_text()
    assert sorted(os.listdir(f"{checkpoints}.moved")) == ["last.ckpt", "step_0000002.ckpt"]  # nothing half-written


@pytest.mark.parametrize("where", ["run_dir", "checkpoints"])
def test_unwritable_output_folder_is_one_line_before_any_training(
    where: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    # A path below a regular file cannot be created by anyone, root included (the tests may run as root, for whom
    # a chmod-protected folder is writable).
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    run_dir = tmp_path / "run"
    if where == "run_dir":
        run_dir = blocker / "run"
        overrides: tuple[str, ...] = ()
        named, fix = str(run_dir), "pass hydra.run.dir=<a writable folder>"
    else:
        overrides = (f"callbacks.model_checkpoint.dirpath={blocker / 'ckpts'}",)
        named, fix = str(blocker / "ckpts"), "pass callbacks.model_checkpoint.dirpath=<a writable folder>"
    env = cli_env(tiny_data_dir)
    common = (*QUIET, "~metrics", "trainer.max_steps=2")
    proc = run_cli("train", *common, *overrides, f"hydra.run.dir={run_dir}", env=env, check=False)
    errors = _error_lines(proc)
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert named in errors[0] and f"{blocker} is a file, not a folder" in errors[0] and fix in errors[0], errors[0]
    assert "train/loss" not in proc.stdout + proc.stderr  # stopped before the first iteration
    assert blocker.read_text() == "a file, not a folder"
    if where == "checkpoints":
        assert not (run_dir / "checkpoints").exists() and not (run_dir / "samples").exists()
        # The suggested override works.
        fixed = fix.removeprefix("pass ").replace("<a writable folder>", str(tmp_path / "ckpts"))
        run_cli("train", *common, fixed, f"hydra.run.dir={run_dir}", env=env)
        assert load_checkpoint_file(tmp_path / "ckpts" / "last.ckpt")["global_step"] == 2


# ---------------------------------------------------------------------------------- in-process Lightning runs


def _tiny_fit(tmp_path: Path, steps: int, callbacks: list[L.Callback]) -> L.Trainer:
    torch.manual_seed(0)
    model = DCGAN(DCGANGenerator(16, 1, nz=8, ngf=4), DCGANDiscriminator(16, 1, ndf=4))
    data = DataLoader(TensorDataset(torch.rand(32, 1, 16, 16) * 2 - 1, torch.zeros(32)), batch_size=8)
    checkpoints = GANCheckpoint(
        dirpath=tmp_path / "checkpoints", filename="step_{step}", every_n_train_steps=2, save_top_k=-1, save_last=True
    )
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        callbacks=[*callbacks, checkpoints],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    return trainer


class _SendSignal(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_in_process_saves_exits_143_and_restores_the_handler(tmp_path: Path) -> None:
    received = []
    outer = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))  # never kill pytest
    try:
        before = signal.getsignal(signal.SIGTERM)
        with pytest.raises(SystemExit) as stopped:
            _tiny_fit(tmp_path, 50, [PreemptionCheckpoint(), _SendSignal(at_step=1)])
        assert stopped.value.code == 143
        # The signal arrived after the check of step 1: step 2 is saved as last.ckpt, before the interval save.
        assert sorted(os.listdir(tmp_path / "checkpoints")) == ["last.ckpt"]
        assert load_checkpoint_file(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2
        assert signal.getsignal(signal.SIGTERM) == before and not received
    finally:
        signal.signal(signal.SIGTERM, outer)


def test_error_inside_the_training_step_saves_no_half_updated_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Raised in iteration 4's first backward pass (D's): its updates are partial, so last.ckpt stays at step 2.
    with caplog.at_level(logging.WARNING, logger="ganzoo.callbacks.failure"), pytest.raises(RuntimeError):
        _tiny_fit(tmp_path, 8, [FailureCheckpoint(), RaiseAtStep(at_step=3, inside_step=True)])
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
        _tiny_fit(tmp_path, 8, [FailureCheckpoint(), RaiseAtStep(at_step=3)])
    assert load_checkpoint_file(last)["global_step"] == 3


def test_guard_refuses_to_save_non_finite_weights_before_writing(tmp_path: Path) -> None:
    # Poisoned after the losses of step 2 were checked, at a checkpoint step: the save itself is refused.
    with pytest.raises(NonFiniteError, match=r"refusing to save a checkpoint at step 2: state_dict\.generator\."):
        _tiny_fit(tmp_path, 6, [NonFiniteGuard(), PoisonWeights(at_step=2)])
    assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")


def test_guard_checks_optimizer_state_and_names_the_last_good_checkpoint(tmp_path: Path) -> None:
    save_atomic({"global_step": 6}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(
        world_size=1, global_step=7, checkpoint_callbacks=[SimpleNamespace(dirpath=str(tmp_path))], default_root_dir=""
    )
    module = SimpleNamespace(device=torch.device("cpu"))
    guard = NonFiniteGuard()
    good = {"state_dict": {"w": torch.ones(3)}, "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}]}
    guard.on_save_checkpoint(trainer, module, good)
    bad = {
        "state_dict": {"w": torch.ones(3)},
        "optimizer_states": [{"state": {0: {"exp_avg_sq": torch.tensor([inf])}}}],
    }
    with pytest.raises(NonFiniteError) as error:
        guard.on_save_checkpoint(trainer, module, bad)
    message = str(error.value)
    assert message.startswith("refusing to save a checkpoint at step 7: optimizer_states[0].0.exp_avg_sq holds NaN")
    assert f"the last good checkpoint is {tmp_path / 'last.ckpt'} (step 6)" in message
    NonFiniteGuard(check_checkpoints=False).on_save_checkpoint(trainer, module, bad)


inf = float("inf")


# --------------------------------------------------------------------------------------- resolving ckpt_path


def _ckpt(path: Path, step: int) -> Path:
    save_atomic({"global_step": step, "state_dict": {"w": torch.zeros(2)}}, path)
    return path


def test_newest_checkpoint_is_the_highest_step_then_last(tmp_path: Path) -> None:
    assert newest_checkpoint([tmp_path, tmp_path / "missing"]) is None
    _ckpt(tmp_path / "step_0000004.ckpt", 4)
    _ckpt(tmp_path / "last.ckpt", 4)
    _ckpt(tmp_path / "best.ckpt", 2)
    assert newest_checkpoint([tmp_path]) == (tmp_path / "last.ckpt", 4)  # a tie goes to last.ckpt
    # A crash after step_0000006 was written but before last.ckpt was: the newer state wins, whatever the mtime.
    os.utime(_ckpt(tmp_path / "step_0000006.ckpt", 6), (1, 1))
    (tmp_path / "last-v1.ckpt").write_bytes(b"PK\x03\x04 truncated")  # unreadable files are skipped
    (tmp_path / ".last.ckpt.host.123.tmp").write_bytes(b"partial")
    assert newest_checkpoint([tmp_path]) == (tmp_path / "step_0000006.ckpt", 6)


def test_only_unreadable_checkpoints_are_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="no readable checkpoint among .*last.ckpt"):
        newest_checkpoint([tmp_path])


def _config(output_dir: Path, ckpt_path: str | None, max_steps: int = 10) -> DictConfig:
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
    assert resolve_resume(_config(run, "last")) == (None, False)  # first launch: from scratch
    monkeypatch.delenv(RESUME_ENV)
    # Searched: the checkpoint callbacks' folders (not the samples folder) and <run dir>/checkpoints.
    _ckpt(run / "samples" / "step_0000009.ckpt", 9)
    _ckpt(run / "ckpts" / "step_0000004.ckpt", 4)
    newest = _ckpt(run / "checkpoints" / "last.ckpt", 5)
    assert resolve_resume(_config(run, "last")) == (str(newest), False)
    monkeypatch.delenv(RESUME_ENV)
    assert resolve_resume(_config(tmp_path / "new", str(run))) == (str(newest), False)  # a run dir
    monkeypatch.delenv(RESUME_ENV)
    assert resolve_resume(_config(run, "last", max_steps=5)) == (None, True)  # already complete
    explicit = str(run / "ckpts" / "step_0000004.ckpt")
    assert resolve_resume(_config(run, explicit, max_steps=5)) == (explicit, False)  # a file: as given
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        resolve_resume(_config(run, str(tmp_path / "empty")))


def test_ddp_processes_take_rank_zeros_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = tmp_path / "run"
    first = _ckpt(run / "checkpoints" / "step_0000002.ckpt", 2)
    assert resolve_resume(_config(run, "last")) == (str(first), False)
    # Rank 0 has started its processes (they inherit the environment) and, say, saved a newer checkpoint
    # before one of them resolved ckpt_path: they still load what rank 0 loads.
    _ckpt(run / "checkpoints" / "step_0000004.ckpt", 4)
    assert resolve_resume(_config(run, "last")) == (str(first), False)
    monkeypatch.delenv(RESUME_ENV)
    assert resolve_resume(_config(run, "last"))[0] == str(run / "checkpoints" / "step_0000004.ckpt")


# -------------------------------------------------------------------------------------- atomic save, SIGKILL


class _SaveLoop:
    """``python -m tests.faults save-loop``: forks checkpoint writers for the test to SIGKILL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults", "save-loop"],
            cwd=REPO,
            env=cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [self.lines.put(line.strip()) for line in self.proc.stdout], daemon=True
        ).start()
        self.expect("ready", timeout=120)

    def expect(self, prefix: str, timeout: float = 60) -> list[str]:
        """Lines up to and including the first that starts with ``prefix``."""
        seen = []
        deadline = time.monotonic() + timeout
        while not seen or not seen[-1].startswith(prefix):
            seen.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
        return seen

    def start(self, mode: str, path: Path, stall: bool = False, numel: int = 4_000_000) -> int:
        self.proc.stdin.write(f"{mode} {int(stall)} {numel} {path}\n")
        self.proc.stdin.flush()
        return int(self.expect("child ")[-1].split()[1])

    def kill(self, pid: int, seen: list[str]) -> int:
        """SIGKILL the writer; the last version it reported saved."""
        os.kill(pid, signal.SIGKILL)
        seen = seen + self.expect(f"exited {pid}")
        return max((int(line.split()[1]) for line in seen if line.startswith("saved ")), default=0)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _temporaries(path: Path) -> list[str]:
    return [name for name in os.listdir(path.parent) if name.startswith(f".{path.name}.") and name.endswith(".tmp")]


def test_sigkill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    loop = _SaveLoop()
    try:
        # Killed in the middle of writing version 2, deterministically: torch.save to the path leaves a
        # truncated file, ganzoo's save_atomic leaves version 1 and a temporary file.
        plain, atomic = tmp_path / "plain.ckpt", tmp_path / "atomic.ckpt"
        for path in (plain, atomic):
            pid = loop.start("plain" if path == plain else "atomic", path, stall=True, numel=1000)
            assert loop.kill(pid, loop.expect("stalled")) == 1
        with pytest.raises(CheckpointError, match="truncated"):
            load_checkpoint_file(plain)
        assert load_checkpoint_file(atomic)["version"] == 1 and len(_temporaries(atomic)) == 1

        # SIGKILL at random moments while 16 MB checkpoints are written back to back: the file is always a
        # complete version, the last one reported saved or the one whose rename had just happened.
        seed = random.randrange(2**32)
        rng = random.Random(seed)
        mid_save = 0
        for _ in range(6):
            pid = loop.start("atomic", atomic)
            seen = loop.expect("saved 1")
            time.sleep(rng.uniform(0.0, 0.3))
            saved = loop.kill(pid, seen)
            checkpoint = load_checkpoint_file(atomic)
            version = checkpoint["version"]
            assert version in (saved, saved + 1), (seed, saved, version)
            assert torch.equal(checkpoint["payload"], torch.full((4_000_000,), float(version))), seed
            mid_save += bool(_temporaries(atomic))
        assert mid_save >= 1, f"no kill landed inside a save (seed {seed})"
    finally:
        loop.close()
    # The next save removes the temporary files the killed writers left behind.
    save_atomic({"version": 0}, atomic)
    assert _temporaries(atomic) == [] and load_checkpoint_file(atomic)["version"] == 0
