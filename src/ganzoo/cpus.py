"""How many CPUs this process may really use, and how many torch threads each process of a run gets.

PyTorch's default intra-op (OpenMP) threads follow the cores it sees: not a cgroup CPU quota (a container
given 2 of 64 cores), nor the other processes of the same run on the machine (DDP ranks started by torchrun
or SLURM). The threads then outnumber the cores, and OpenMP threads that spin while waiting for a
descheduled peer multiply step times. :func:`set_torch_threads` gives each process its share of the CPUs it
may use. Other people's processes are not counted: the thread count changes the order of float sums, so a
choice that followed the load would change a seeded run's numbers from one launch to the next
(``OMP_NUM_THREADS=1`` is the remedy on a busy shared machine; see docs/training.md, "CPU threads").

This module imports torch only when it sets threads, so :func:`available_cpus` can size ``OMP_NUM_THREADS``
before torch (and its OpenMP runtime, which reads it once) is loaded.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ganzoo.errors import ConfigError

log = logging.getLogger(__name__)


def cgroup_cpu_limit(root: str | os.PathLike[str] = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of the cgroup at ``root`` in CPUs (e.g. 1.5), or None when there is none.

    Reads cgroup v2's ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``), else cgroup v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: unlimited), at ``root`` or ``root/cpu``.
    """
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (root, root / "cpu", root / "cpu,cpuacct"):
        try:
            quota_us = int((folder / "cpu.cfs_quota_us").read_text())
            period_us = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def available_cpus(cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int:
    """The CPUs this process can run on at the same time: the affinity mask (``taskset``, SLURM's binding),
    capped by the cgroup quota (containers, ``--cpus``) rounded up; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def _positive_int(value: Any) -> int | None:
    """``value`` as an int > 0 (ints and digit strings), else None."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _slurm_per_node(value: str) -> list[int]:
    """SLURM's per-node counts (``"4"``, ``"2(x3),1"`` = 2, 2, 2, 1) as a list; [] when unreadable."""
    counts: list[int] = []
    for part in value.split(","):
        count, _, repeat = part.strip().partition("(x")
        n, times = _positive_int(count), _positive_int(repeat.rstrip(")")) if repeat else 1
        if n is None or times is None:
            return []
        counts += [n] * times
    return counts


def _device_count(accelerator: str, devices: Any) -> int:
    """How many devices (so processes) Lightning's ``devices`` selects for ``accelerator`` ("cpu" or "cuda");
    at least 1. Values Lightning refuses count 1: Lightning reports them itself."""
    if accelerator == "cpu":  # an int > 0 or its digits; "auto" is one process
        return _positive_int(devices) or 1
    if isinstance(devices, str) and "," in devices:  # GPU ids: "0,1" or "3,"
        return max(1, len([d for d in devices.split(",") if d.strip()]))
    if isinstance(devices, Sequence) and not isinstance(devices, str):  # [0, 1]
        return max(1, len(devices))
    if str(devices).strip() in ("-1", "auto"):  # every visible GPU
        import torch

        return max(1, torch.cuda.device_count())
    return _positive_int(devices) or 1


def _ddp_processes(trainer: Mapping[str, Any]) -> int:
    """The processes Lightning starts on this machine for ``trainer`` (a Trainer config): its devices for a
    DDP (or FSDP) run on CPUs or CUDA GPUs, else 1. GPU ranks count too: Lightning's launcher would divide the
    affinity mask among them, which oversubscribes a container's CPU quota."""
    strategy = trainer.get("strategy", "auto")
    if isinstance(strategy, Mapping):  # a strategy object's config, e.g. {_target_: ...DDPStrategy, ...}
        strategy = str(strategy.get("_target_", "")).rsplit(".", 1)[-1].lower()
    if not str(strategy).lower().startswith(("ddp", "fsdp", "auto")):
        return 1
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator == "auto":  # as Lightning picks (MPS, one device, counts as one process either way)
        import torch

        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator not in ("cpu", "gpu", "cuda"):
        return 1
    return _device_count("cpu" if accelerator == "cpu" else "cuda", trainer.get("devices", "auto"))


def _local_processes(trainer: Mapping[str, Any] | None, env: Mapping[str, str]) -> tuple[int, str]:
    """:func:`local_processes` and where the count came from, for the log line."""
    # torchrun (and other elastic launchers) name it; Lightning does not for the ranks it starts itself.
    count = _positive_int(env.get("LOCAL_WORLD_SIZE"))
    if count:
        return count, "LOCAL_WORLD_SIZE"
    # srun sets the SLURM_STEP_* variables for the tasks it starts; the batch script and an salloc shell have only
    # the job's SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE, which count tasks that nobody has started (there,
    # Lightning starts the ranks and trainer.devices counts them).
    per_node = _slurm_per_node(env.get("SLURM_STEP_TASKS_PER_NODE", ""))
    if per_node:
        node = env.get("SLURM_NODEID", "").strip()
        # The job's node index; for a step on some of the job's nodes it may not index the step's list: then the
        # largest count, which errs towards fewer threads.
        count = per_node[int(node)] if node.isdigit() and int(node) < len(per_node) else max(per_node)
        return count, "SLURM_STEP_TASKS_PER_NODE"
    if trainer is not None:
        count = _ddp_processes(trainer)
        if count > 1:
            return count, "trainer.devices"
    return 1, ""


def local_processes(trainer: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The processes of this run on this machine, which share its CPUs.

    ``LOCAL_WORLD_SIZE`` when a launcher set it (torchrun); this node's entry of ``SLURM_STEP_TASKS_PER_NODE``
    in a task started by srun; else, for a run that Lightning will start as DDP (``trainer``: the Trainer
    config, e.g. ``trainer=ddp_cpu``), its devices; else 1. The ranks Lightning starts get the same
    config, so each of them counts the same. ``env`` defaults to ``os.environ``.
    """
    return _local_processes(trainer, os.environ if env is None else env)[0]


def cpus_per_process(
    local_processes: int,
    *,
    slurm_task: bool = False,
    environ: Mapping[str, str] | None = None,
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> int:
    """The CPUs each of the run's ``local_processes`` processes on this machine may use, at least 1.

    :func:`available_cpus` is what all of them share when one launcher started them (Lightning, torchrun), so
    it is divided among them. When srun started each as its own task (``slurm_task``) with
    ``--cpus-per-task``, ``SLURM_CPUS_PER_TASK`` is each one's share: SLURM may or may not have bound the task
    to its own CPUs, so the affinity mask alone cannot tell (dividing a bound task's mask again would leave
    it 1 of its 8 CPUs).
    """
    environ = os.environ if environ is None else environ
    cpus = available_cpus(cgroup_root)
    per_task = _positive_int(environ.get("SLURM_CPUS_PER_TASK"))
    if slurm_task and per_task is not None:
        return max(1, min(cpus, per_task))
    return max(1, cpus // max(1, local_processes))


def omp_num_threads(env: Mapping[str, str] | None = None) -> int | None:
    """The threads ``OMP_NUM_THREADS`` asks for (its first level: OpenMP also takes ``"4,2"``), None when unset.

    A value OpenMP refuses (``0``, ``abc``, empty) would silently give one thread per CPU again, so it is an
    error here.
    """
    value = (os.environ if env is None else env).get("OMP_NUM_THREADS")
    if value is None:
        return None
    levels = [_positive_int(level) for level in value.split(",")]
    if not levels or None in levels:
        raise ConfigError(
            f"OMP_NUM_THREADS={value!r} must be a positive integer (the torch threads of each process): e.g. "
            "OMP_NUM_THREADS=1, or `unset OMP_NUM_THREADS` to let ganzoo choose"
        )
    return levels[0]


def choose_torch_threads(
    trainer: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> tuple[int | None, int, str]:
    """The torch threads for this process (None: leave them as ``OMP_NUM_THREADS`` set them), the local process
    count, and the reason in words.

    Without ``OMP_NUM_THREADS``: :func:`cpus_per_process` for :func:`local_processes`.
    """
    env = os.environ if env is None else env
    if omp_num_threads(env) is not None:
        return None, 1, f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}"
    processes, source = _local_processes(trainer, env)
    slurm_task = source == "SLURM_STEP_TASKS_PER_NODE"
    threads = cpus_per_process(processes, slurm_task=slurm_task, environ=env, cgroup_root=cgroup_root)
    cpus = available_cpus(cgroup_root)
    counted = f"{processes} local process{'es' if processes != 1 else ''}" + (f" ({source})" if source else "")
    reason = f"{cpus} CPUs available / {counted}"
    if slurm_task and _positive_int(env.get("SLURM_CPUS_PER_TASK")):
        reason = f"SLURM_CPUS_PER_TASK={env['SLURM_CPUS_PER_TASK']} of {cpus} CPUs available, {counted}"
    return threads, processes, reason


#: The OMP_NUM_THREADS value this process set for the ranks Lightning starts (so a later job of a multirun in
#: the same process does not take it for the user's), and the last line logged.
_own_omp_value: str | None = None
_logged: str | None = None


def set_torch_threads(trainer: Mapping[str, Any] | None = None) -> int:
    """Give this process its share of the CPUs as torch intra-op threads; returns the threads torch now uses.

    Called once at the start of ``python -m ganzoo.train`` (in :func:`ganzoo.train.train`, so each DDP rank and
    each job of a multirun sets its own; ``trainer`` is the run's Trainer config), ``ganzoo.evaluate``,
    ``ganzoo.sample`` and ``ganzoo.translate``. :func:`ganzoo.load` and the other Python functions leave the
    threads alone: a Python user keeps control of the process. An explicit ``OMP_NUM_THREADS`` wins; see
    :func:`choose_torch_threads` for the rest. When several local processes share the CPUs, the choice is also
    put into ``OMP_NUM_THREADS``, which the ranks that Lightning starts inherit, and which keeps Lightning's DDP
    launcher from replacing it with its own count (the affinity mask divided by the devices, which misses a
    cgroup quota and SLURM's ``--cpus-per-task``). Logs the choice at INFO, once per process (again if it
    changes). The inter-op pool is left alone: eager training never starts it.
    """
    import torch

    global _own_omp_value, _logged
    if _own_omp_value is not None and os.environ.get("OMP_NUM_THREADS") == _own_omp_value:
        del os.environ["OMP_NUM_THREADS"]  # this process's own choice for an earlier job, not the user's
    _own_omp_value = None
    threads, processes, reason = choose_torch_threads(trainer, os.environ)
    if threads is None:
        message = f"torch threads: {torch.get_num_threads()} ({reason})"
    else:
        torch.set_num_threads(threads)
        if processes > 1:
            _own_omp_value = os.environ["OMP_NUM_THREADS"] = str(threads)
        message = f"torch threads: {threads} ({reason}; OMP_NUM_THREADS unset)"
    if message != _logged:
        log.info(message)
        _logged = message
    return torch.get_num_threads()
