"""Fault tolerance of real processes: checkpoints survive SIGKILL mid-save, SIGTERM saves and exits for a requeue
(one process and DDP), the same command with ``ckpt_path=last`` resumes, a NaN loss stops ``python -m ganzoo.train``
with one error line and the last good checkpoint intact, a bug in a callback keeps its traceback, and an unwritable
run directory is one line. In this process: tests/unit/callbacks (guards, failure, preemption, checkpoint) and
tests/unit/test_checkpoint.py."""

from __future__ import annotations

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

import pytest
import torch

from ganzoo.callbacks.preemption import PREEMPTED_EXIT_CODE
from ganzoo.checkpoint import load_checkpoint_file, save_atomic
from ganzoo.errors import CheckpointError
from tests.conftest import QUIET, REPO, SMALL_NETS, cli_env, run_cli


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
        *SMALL_NETS,
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
        *SMALL_NETS,
        "~metrics",
        "trainer.max_steps=8",
        "+callbacks.poison._target_=tests.faults.PoisonWeights",
        "+callbacks.poison.at_step=3",
        f"hydra.run.dir={run_dir}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    errors = _error_lines(proc)
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


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_exception_in_a_callback_saves_its_step_and_goes_to_the_run_log(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        *QUIET,
        *SMALL_NETS,
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


def test_unwritable_run_dir_is_one_line_before_any_training(tiny_data_dir: Path, tmp_path: Path) -> None:
    # A path below a regular file cannot be created by anyone, root included (the tests may run as root, for whom
    # a chmod-protected folder is writable). Hydra's callback probes the run directory before Hydra creates it.
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    run_dir = blocker / "run"
    named, fix = str(run_dir), "pass hydra.run.dir=<a writable folder>"
    common = (*QUIET, "~metrics", "trainer.max_steps=2")
    proc = run_cli("train", *common, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir), check=False)
    errors = _error_lines(proc)
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert named in errors[0] and f"{blocker} is a file, not a folder" in errors[0] and fix in errors[0], errors[0]
    assert "train/loss" not in proc.stdout + proc.stderr  # stopped before the first iteration
    assert blocker.read_text() == "a file, not a folder"


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
        # A writer killed inside fsync dies only when the disk has taken the write: on a busy disk (a whole test
        # session writing checkpoints) that has taken over a minute.
        seen = seen + self.expect(f"exited {pid}", timeout=240)
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
