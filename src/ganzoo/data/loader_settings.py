"""DataLoader settings that keep the run's device fed: ``auto`` values resolved from where the run loads.

The data configs set ``num_workers``, ``pin_memory``, ``persistent_workers`` and ``prefetch_factor`` to
``auto``; a data module resolves them when it builds its loaders, from its trainer's device and the CPUs each
of the run's processes on this machine may use (:class:`Placement`). A value given explicitly (an int or a
bool, e.g. ``data.num_workers=3``) is kept as it is. The rules (docs/data.md, "Loading on a GPU"):

* on an accelerator (CUDA, MPS, ...): ``num_workers`` = the CPUs of this process minus one for the training
  thread, at least 1 and at most :data:`MAX_AUTO_WORKERS`, so decoding and augmentation never run on the
  training thread; ``prefetch_factor`` :data:`ACCELERATOR_PREFETCH`; pinned memory on CUDA;
* on a CPU: the data module's own :attr:`~ganzoo.data.base.ImageDataModule.cpu_num_workers` (0 for data held
  in memory, 2 for image files and CIFAR), torch's default prefetch (2), no pinned memory;
* ``persistent_workers`` whenever there are workers; pinned memory only where a CUDA device exists, whatever
  was asked (PyTorch would ignore it, with a warning, on a machine without one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from ganzoo.cpus import cpus_per_process
from ganzoo.errors import ConfigError

if TYPE_CHECKING:
    import lightning as L

#: The value of a loader key that lets the run choose.
AUTO = "auto"

#: Most workers ``auto`` gives one process. One worker delivers over 100 pairs/s of CycleGAN's 256-px recipe
#: even on a busy 2-CPU machine, where a 30 ms GPU step takes 33 (docs/data.md, "Loading on a GPU"), so 8 are
#: far more than a ganzoo recipe consumes per GPU; more would only hold more batches in memory. Set
#: ``data.num_workers`` for more.
MAX_AUTO_WORKERS = 8

#: Batches each worker keeps ready on an accelerator (torch's default is 2). With batch 1 and one or two
#: workers, 2 per worker covers only a few steps of a slow file, a checkpoint write or another process
#: taking the CPU; 4 doubles that slack for two more batches of shared memory per worker (3 MB for a
#: CycleGAN pair at 256 px).
ACCELERATOR_PREFETCH = 4

#: Batches each worker keeps ready on a CPU run: torch's default.
CPU_PREFETCH = 2


@dataclass(frozen=True)
class Placement:
    """Where a run's loaders feed: the device type of its processes and the CPUs each of them may use.

    Attributes:
        device_type: ``torch.device.type`` of the run: ``"cuda"``, ``"cpu"``, ``"mps"``, ...
        cpus_per_process: CPUs available to this process's loading, >= 1.
        local_processes: processes of the run on this machine (one per device), >= 1.
    """

    device_type: str
    cpus_per_process: int
    local_processes: int = 1

    @property
    def accelerated(self) -> bool:
        """True when the model runs on an accelerator, so loading should overlap with its steps."""
        return self.device_type != "cpu"

    @classmethod
    def of_trainer(cls, trainer: L.Trainer) -> Placement:
        """The placement of a Lightning trainer's process: its root device and its devices on this machine.

        ``trainer.accelerator=auto`` on a machine with CUDA is a CUDA run, as Lightning decides it.
        """
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        local = max(1, int(trainer.num_devices))
        # SLURM's environment means srun started each process as its own task (Lightning reads the ranks
        # from SLURM_PROCID / SLURM_LOCALID), so SLURM_CPUS_PER_TASK is that process's own share.
        slurm = isinstance(getattr(trainer.strategy, "cluster_environment", None), SLURMEnvironment)
        return cls(trainer.strategy.root_device.type, cpus_per_process(local, slurm_task=slurm), local)

    @classmethod
    def of_machine(cls) -> Placement:
        """The placement of one process outside a trainer (``ganzoo.evaluate``, Python): CUDA when present."""
        if torch.cuda.is_available():
            device_type = "cuda"
        elif torch.backends.mps.is_available():
            device_type = "mps"
        else:
            device_type = "cpu"
        return cls(device_type, cpus_per_process(1), 1)


def accelerator_workers(cpus: int) -> int:
    """Workers for one process feeding an accelerator from ``cpus`` CPUs: one CPU stays with the training
    thread (which launches the device's work), at least one worker so no image is decoded on that thread,
    at most :data:`MAX_AUTO_WORKERS`."""
    return max(1, min(MAX_AUTO_WORKERS, cpus - 1))


@dataclass(frozen=True)
class LoaderSettings:
    """Keyword arguments of :class:`torch.utils.data.DataLoader`, resolved for one run.

    ``persistent_workers`` is only true and ``prefetch_factor`` only set (not None) when ``num_workers > 0``:
    torch rejects either without workers.
    """

    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None

    def kwargs(self) -> dict[str, Any]:
        """The settings as DataLoader keyword arguments."""
        return asdict(self)


def _bool_or_auto(key: str, value: Any) -> bool | Literal["auto"]:
    if value == AUTO or isinstance(value, bool):
        return value
    raise ConfigError(f"data.{key} must be auto, true or false, got {value!r}: set data.{key}=auto")


def _int_or_auto(key: str, value: Any, minimum: int, example: int) -> int | Literal["auto"]:
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        return value
    raise ConfigError(
        f"data.{key} must be auto or an integer >= {minimum}, got {value!r}: "
        f"set data.{key}=auto or e.g. data.{key}={example}"
    )


@dataclass(frozen=True)
class LoaderRequest:
    """The loader keys as configured: each an explicit value or ``"auto"``; checked on construction.

    Raises :class:`~ganzoo.errors.ConfigError` (one line naming the key and a fix) for any other value.
    """

    num_workers: int | Literal["auto"] = AUTO
    pin_memory: bool | Literal["auto"] = AUTO
    persistent_workers: bool | Literal["auto"] = AUTO
    prefetch_factor: int | Literal["auto"] = AUTO

    def __post_init__(self) -> None:
        _int_or_auto("num_workers", self.num_workers, 0, 4)
        _bool_or_auto("pin_memory", self.pin_memory)
        _bool_or_auto("persistent_workers", self.persistent_workers)
        _int_or_auto("prefetch_factor", self.prefetch_factor, 1, ACCELERATOR_PREFETCH)

    def resolve(self, placement: Placement, cpu_num_workers: int) -> LoaderSettings:
        """The settings for ``placement``; ``cpu_num_workers`` is what ``num_workers=auto`` means on a CPU."""
        accelerated = placement.accelerated
        if self.num_workers == AUTO:
            workers = accelerator_workers(placement.cpus_per_process) if accelerated else cpu_num_workers
        else:
            workers = self.num_workers
        pin = accelerated if self.pin_memory == AUTO else self.pin_memory
        # Pinned pages only speed up copies to a CUDA device; without one torch warns and ignores the request.
        pin = bool(pin) and placement.device_type == "cuda" and torch.cuda.is_available()
        persistent = workers > 0 and self.persistent_workers in (True, AUTO)
        prefetch: int | None = None
        if workers > 0:
            auto_prefetch = ACCELERATOR_PREFETCH if accelerated else CPU_PREFETCH
            prefetch = auto_prefetch if self.prefetch_factor == AUTO else self.prefetch_factor  # type: ignore[assignment]
        return LoaderSettings(workers, pin, persistent, prefetch)

    def describe(self, settings: LoaderSettings, placement: Placement) -> str:
        """One line: the settings in words, each marked ``auto`` or ``set``, and what ``auto`` was chosen from."""
        origin = {key: "auto" if value == AUTO else "set" for key, value in asdict(self).items()}
        if self.pin_memory is True and not settings.pin_memory:
            origin["pin_memory"] = "set, but this run has no CUDA device"
        workers = settings.num_workers
        parts = [
            f"{workers} worker{'s' if workers != 1 else ''} ({origin['num_workers']})",
            f"{'persistent' if settings.persistent_workers else 'not persistent'} ({origin['persistent_workers']})",
            (f"prefetch {settings.prefetch_factor} batches per worker" if settings.prefetch_factor else "no prefetch")
            + f" ({origin['prefetch_factor']})",
            f"{'pinned memory' if settings.pin_memory else 'no pinned memory'} ({origin['pin_memory']})",
        ]
        cpus, processes = placement.cpus_per_process, placement.local_processes
        where = (
            f"a {placement.device_type} run, {cpus} CPU{'s' if cpus != 1 else ''} per process, "
            f"{processes} process{'es' if processes != 1 else ''} on this machine"
        )
        return f"data loaders for {where}: {', '.join(parts)}"
