"""CPU counting (cgroup quotas, affinity), local process counting and the torch threads each entry point sets
(an entry point stopped by a bad OMP_NUM_THREADS: tests/cli/test_cpus.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import ganzoo.cpus
import ganzoo.sample
from ganzoo.cpus import (
    available_cpus,
    cgroup_cpu_limit,
    choose_torch_threads,
    local_processes,
    omp_num_threads,
    set_torch_threads,
)
from ganzoo.errors import ConfigError
from ganzoo.train import compose_config
from tests.conftest import QUIET, compose_entry_point, process_state_kept

AFFINITY = len(os.sched_getaffinity(0))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# cgroup quotas, from files in the kernel's formats


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    write(tmp_path / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5


def test_cgroup_v2_without_quota(tmp_path: Path) -> None:
    write(tmp_path / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


@pytest.mark.parametrize("folder", [".", "cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path: Path, folder: str) -> None:
    write(tmp_path / folder / "cpu.cfs_quota_us", "200000\n")
    write(tmp_path / folder / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.0


def test_cgroup_v1_unlimited(tmp_path: Path) -> None:
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_no_cgroup_files(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "missing") is None
    assert available_cpus(tmp_path) == AFFINITY


def test_available_cpus_is_the_affinity_mask_capped_by_the_quota_rounded_up(tmp_path: Path) -> None:
    cpu_max = write(tmp_path / "cpu.max", "50000 100000\n")  # half a CPU: one thread, not none
    assert available_cpus(tmp_path) == 1
    cpu_max.write_text("100000000 100000\n")  # 1000 CPUs: the mask is the limit
    assert available_cpus(tmp_path) == AFFINITY


# local processes, from environments as launchers set them


def test_one_process_without_a_launcher() -> None:
    assert local_processes(env={}) == 1
    assert local_processes(compose_config().trainer, env={}) == 1


def test_torchrun_local_world_size_wins() -> None:
    assert local_processes(compose_config(["trainer=ddp_cpu"]).trainer, env={"LOCAL_WORLD_SIZE": "4"}) == 4


def test_slurm_tasks_of_this_node() -> None:
    env = {"SLURM_STEP_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"}
    assert local_processes(env=env) == 1
    assert local_processes(env={**env, "SLURM_NODEID": "1"}) == 2
    assert local_processes(env={"SLURM_STEP_TASKS_PER_NODE": "8"}) == 8
    # The batch script itself (no srun step): its job-wide counts start nothing.
    assert local_processes(env={"SLURM_NTASKS_PER_NODE": "8", "SLURM_TASKS_PER_NODE": "8"}) == 1


def test_cpu_ddp_counts_the_trainer_devices() -> None:
    assert local_processes(compose_config(["trainer=ddp_cpu"]).trainer, env={}) == 2
    assert local_processes(compose_config(["trainer=ddp_cpu", "trainer.devices=3"]).trainer, env={}) == 3
    # A strategy given as an object's config.
    trainer = {"accelerator": "cpu", "strategy": {"_target_": "lightning.pytorch.strategies.DDPStrategy"}, "devices": 2}
    assert local_processes(trainer, env={}) == 2
    # GPU ranks too (Lightning's own division of the affinity mask would miss a container's quota).
    assert local_processes(compose_config(["trainer=ddp", "trainer.devices=2"]).trainer, env={}) == 2
    assert local_processes(compose_config(["trainer=ddp", "trainer.devices=[0,1,2]"]).trainer, env={}) == 3
    assert local_processes({"accelerator": "gpu", "strategy": "ddp", "devices": "1,3"}, env={}) == 2
    # One device, or a strategy of one process.
    assert local_processes(compose_config(["trainer=ddp_cpu", "trainer.devices=1"]).trainer, env={}) == 1
    assert local_processes({"accelerator": "cpu", "strategy": "single_device", "devices": 2}, env={}) == 1


# the choice


def test_cpus_are_divided_among_local_processes(tmp_path: Path) -> None:
    trainer = compose_config(["trainer=ddp_cpu"]).trainer
    assert choose_torch_threads(trainer, env={}, cgroup_root=tmp_path) == (
        max(1, AFFINITY // 2),
        2,
        f"{AFFINITY} CPUs available / 2 local processes (trainer.devices)",
    )
    assert choose_torch_threads(env={}, cgroup_root=tmp_path)[:2] == (AFFINITY, 1)
    write(tmp_path / "cpu.max", "100000 100000\n")
    assert choose_torch_threads(env={}, cgroup_root=tmp_path)[0] == 1


def test_slurm_cpus_per_task_is_the_share_whether_or_not_tasks_are_bound(tmp_path: Path) -> None:
    env = {"SLURM_STEP_TASKS_PER_NODE": "8", "SLURM_CPUS_PER_TASK": "64"}
    assert choose_torch_threads(env=env, cgroup_root=tmp_path)[0] == AFFINITY
    env["SLURM_CPUS_PER_TASK"] = "1"
    assert choose_torch_threads(env=env, cgroup_root=tmp_path)[0] == 1


@pytest.mark.parametrize("value, threads", [("1", 1), ("3", 3), (" 2", 2), ("4,2", 4)])
def test_omp_num_threads_is_respected(value: str, threads: int) -> None:
    assert omp_num_threads({"OMP_NUM_THREADS": value}) == threads
    env = {"OMP_NUM_THREADS": value, "LOCAL_WORLD_SIZE": "8"}
    assert choose_torch_threads(env=env) == (None, 1, f"OMP_NUM_THREADS={value}")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.5", "2,"])
def test_bad_omp_num_threads_is_one_line_naming_the_fix(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^OMP_NUM_THREADS=.* must be a positive integer .*OMP_NUM_THREADS=1"):
        choose_torch_threads(env={"OMP_NUM_THREADS": value})


def test_ranks_inherit_the_choice_and_later_jobs_do_not_take_it_for_the_users(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As in a fresh process (nothing chosen or logged yet, no OMP_NUM_THREADS): a CPU DDP run puts its choice into
    OMP_NUM_THREADS (for the ranks Lightning starts, and so Lightning keeps it); later jobs in the same process (a
    multirun) still choose, each choice logged once, and a single-process job takes the variable away again."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(ganzoo.cpus, "_own_omp_value", None)
    monkeypatch.setattr(ganzoo.cpus, "_logged", None)
    ddp = {"accelerator": "cpu", "strategy": "ddp", "devices": 2}
    seen = []
    with process_state_kept(), caplog.at_level(logging.INFO, logger="ganzoo"):
        seen += [set_torch_threads(ddp), os.environ["OMP_NUM_THREADS"]]
        seen += [set_torch_threads(ddp), torch.get_num_threads()]
        seen += [set_torch_threads(), os.environ.get("OMP_NUM_THREADS")]
    cpus = available_cpus()
    threads = max(1, cpus // 2)
    assert [str(value) for value in seen] == [str(threads)] * 4 + [str(cpus), "None"]
    assert caplog.text.count(f"torch threads: {threads} ({cpus} CPUs available / 2 local processes") == 1
    assert caplog.text.count(f"torch threads: {cpus} ({cpus} CPUs available / 1 local process;") == 1


# the entry points


def test_train_logs_its_threads(
    train_in_process: Callable[..., dict[str, float]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(ganzoo.cpus, "_logged", None)  # as in a fresh process: the choice is not logged yet
    tiny = ("model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=4", "trainer.max_steps=2")
    with caplog.at_level(logging.INFO, logger="ganzoo"):
        train_in_process(tmp_path / "run", *QUIET, "~metrics", *tiny)
    cpus = available_cpus()
    line = f"torch threads: {cpus} ({cpus} CPUs available / 1 local process; OMP_NUM_THREADS unset)"
    assert line in caplog.text


def test_omp_num_threads_is_honoured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # The body of ganzoo.sample sets the threads before it checks its arguments: the missing ckpt= ends it at once.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(ganzoo.cpus, "_logged", None)
    cfg = compose_entry_point("sample")
    with process_state_kept(), caplog.at_level(logging.INFO, logger="ganzoo"):
        torch.set_num_threads(1)  # what torch does at the start of a process run with OMP_NUM_THREADS=1
        with pytest.raises(SystemExit):
            ganzoo.sample.main(cfg)
        assert torch.get_num_threads() == 1
    assert "torch threads: 1 (OMP_NUM_THREADS=1)" in caplog.text
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ckpt= is required")
