"""DataLoader settings: ``auto`` resolved from the run's trainer, explicit values kept, batches unchanged by workers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate

import ganzoo.cpus
from ganzoo.cpus import cpus_per_process
from ganzoo.data.loader_settings import LoaderSettings, Placement
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from ganzoo.errors import ConfigError
from ganzoo.train import compose_config
from tests.data.writers import write_unpaired_folders

# Tests that pretend a CUDA machine and still pick a CPU trainer hear Lightning say so.
pytestmark = pytest.mark.filterwarnings("ignore:GPU available but not used")

#: What the CPU runs of each data config loaded with before the loader keys took ``auto`` (pinned memory
#: aside: those configs asked for it, and PyTorch ignored it without a CUDA device).
CPU_IN_MEMORY = LoaderSettings(num_workers=0, pin_memory=False, persistent_workers=False, prefetch_factor=None)
CPU_FILES = LoaderSettings(num_workers=2, pin_memory=False, persistent_workers=True, prefetch_factor=2)


def gpu_settings(workers: int) -> LoaderSettings:
    return LoaderSettings(num_workers=workers, pin_memory=True, persistent_workers=True, prefetch_factor=4)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Pretend this machine has ``cpus`` CPUs and ``gpus`` CUDA devices (as far as Lightning and ganzoo ask)."""

    def pretend(cpus: int, gpus: int) -> None:
        monkeypatch.setattr(ganzoo.cpus, "available_cpus", lambda cgroup_root="/sys/fs/cgroup": cpus)
        if gpus:
            monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
            monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    return pretend


def resolved(overrides: list[str]) -> LoaderSettings:
    """The loader settings of ``python -m ganzoo.train <overrides>``: its data module attached to its trainer."""
    cfg = compose_config(overrides)
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, enable_model_summary=False)
    datamodule = instantiate(cfg.data)
    datamodule.trainer = trainer
    return datamodule.loader_settings()


@pytest.mark.parametrize(
    ("trainer", "data", "cpus", "gpus", "expected"),
    [
        # One GPU: all CPUs but the training thread's, at most 8.
        ("gpu", "unpaired", 16, 1, gpu_settings(8)),
        ("gpu", "unpaired", 4, 1, gpu_settings(3)),
        ("gpu", "fashion_mnist", 4, 1, gpu_settings(3)),
        ("gpu", "cifar10", 2, 1, gpu_settings(1)),
        # At least one worker, so no image is decoded on the training thread.
        ("gpu", "image_folder", 1, 1, gpu_settings(1)),
        # accelerator auto on a machine with CUDA is a GPU run.
        ("default", "horse2zebra", 16, 2, gpu_settings(8)),
        # DDP: the machine's CPUs shared by its devices' processes (devices=-1: every visible GPU).
        ("ddp", "unpaired", 16, 4, gpu_settings(3)),
        ("ddp_multinode", "paired", 16, 4, gpu_settings(3)),
        ("ddp", "fashion_mnist", 8, 8, gpu_settings(1)),
        # CPU runs load as they always have, CUDA or not.
        ("default", "fashion_mnist", 16, 0, CPU_IN_MEMORY),
        ("default", "fmnist_domains", 16, 0, CPU_IN_MEMORY),
        ("default", "unpaired", 16, 0, CPU_FILES),
        ("default", "image_folder", 16, 0, CPU_FILES),
        ("default", "cifar100", 16, 0, CPU_FILES),
        ("cpu", "paired", 16, 1, CPU_FILES),
        ("cpu", "fashion_mnist", 16, 1, CPU_IN_MEMORY),
        ("ddp_cpu", "unpaired", 16, 2, CPU_FILES),
        ("ddp_cpu", "cifar10", 16, 0, CPU_FILES),
    ],
)
def test_trainer_configs_pick_the_loader_settings(
    machine: Any, trainer: str, data: str, cpus: int, gpus: int, expected: LoaderSettings
) -> None:
    machine(cpus, gpus)
    assert resolved([f"trainer={trainer}", f"data={data}"]) == expected


def test_explicit_values_win(machine: Any) -> None:
    machine(16, 4)
    explicit = [
        "data.num_workers=3",
        "data.pin_memory=false",
        "data.persistent_workers=false",
        "data.prefetch_factor=2",
    ]
    assert resolved(["trainer=gpu", "data=unpaired", *explicit]) == LoaderSettings(3, False, False, 2)
    assert resolved(["trainer=ddp", "data=unpaired", "data.prefetch_factor=8"]) == LoaderSettings(3, True, True, 8)
    # The experiments' own values are explicit too (BigGAN's ImageNet recipe sets 8 workers).
    assert resolved(["trainer=gpu", "experiment=biggan_imagenet128"]).num_workers == 8
    # No workers: nothing persists or prefetches, whatever was asked.
    asked = ["data.num_workers=0", "data.persistent_workers=true", "data.prefetch_factor=4"]
    assert resolved(["trainer=gpu", "data=unpaired", *asked]) == LoaderSettings(0, True, False, None)
    # Pinned memory only where a CUDA device takes the batches.
    assert resolved(["trainer=cpu", "data=unpaired", "data.pin_memory=true"]).pin_memory is False
    assert resolved(["trainer=cpu", "data=fashion_mnist", "data.num_workers=1"]) == LoaderSettings(1, False, True, 2)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_workers", -1, "data.num_workers must be auto or an integer >= 0, got -1: set data.num_workers=auto"),
        ("num_workers", "many", "data.num_workers must be auto or an integer >= 0, got 'many'"),
        ("num_workers", True, "data.num_workers must be auto or an integer >= 0, got True"),
        ("num_workers", 1.5, "data.num_workers must be auto or an integer >= 0, got 1.5"),
        ("pin_memory", "yes", "data.pin_memory must be auto, true or false, got 'yes': set data.pin_memory=auto"),
        ("pin_memory", 1, "data.pin_memory must be auto, true or false, got 1"),
        ("persistent_workers", None, "data.persistent_workers must be auto, true or false, got None"),
        (
            "prefetch_factor",
            0,
            "data.prefetch_factor must be auto or an integer >= 1, got 0: set data.prefetch_factor=auto",
        ),
    ],
)
def test_bad_values_are_one_line_config_errors(tmp_path: Path, key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        UnpairedImageFolderDataModule(str(tmp_path), **{key: value})
    assert "\n" not in str(error.value)


def test_cpus_per_process() -> None:
    cpus = ganzoo.cpus.available_cpus()
    assert cpus_per_process(1, environ={}) == cpus
    assert cpus_per_process(10_000, environ={}) == 1
    # srun started each process as its own task: --cpus-per-task is that process's share (at most the mask).
    environ = {"SLURM_CPUS_PER_TASK": "1"}
    assert cpus_per_process(10_000, slurm_task=True, environ=environ) == 1
    assert cpus_per_process(1, slurm_task=True, environ={"SLURM_CPUS_PER_TASK": "10000"}) == cpus
    # One srun task that started all the processes itself (torchrun): they share its CPUs.
    assert cpus_per_process(10_000, slurm_task=False, environ=environ) == 1


def test_srun_tasks_each_get_their_cpus_per_task(machine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    machine(96, 4)
    slurm = {
        "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2", "SLURM_JOB_NAME": "train",
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "gpu[1-2]",
        "SLURM_CPUS_PER_TASK": "3",
    }  # fmt: skip
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    assert resolved(["trainer=ddp_multinode", "data=unpaired"]).num_workers == 2
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert resolved(["trainer=ddp_multinode", "data=unpaired"]).num_workers == 8  # 96 CPUs over 4 processes


def _epochs(loader: torch.utils.data.DataLoader, epochs: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # what Lightning does before each epoch
        out.append(list(loader))
    return out


def _same(a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    if len(a) != len(b):
        return False
    return all(torch.equal(x, y) for pa, pb in zip(a, b, strict=True) for x, y in zip(pa, pb, strict=True))


def test_gpu_settings_yield_the_training_threads_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    root = write_unpaired_folders(tmp_path / "h2z", n_train_a=7, n_train_b=4)
    # Random 8-px crops of 10-px images and flips: the augmentation a worker draws must match the main thread's.
    common = {"image_size": 8, "load_size": 10, "batch_size": 2, "seed": 5}
    reference = UnpairedImageFolderDataModule(str(root), num_workers=0, **common)
    expected = _epochs(reference.train_dataloader(), 2)

    # A GPU run on this machine (which has no CUDA): three CPUs for the process give two workers.
    monkeypatch.setattr(Placement, "of_machine", classmethod(lambda cls: Placement("cuda", cpus_per_process=3)))
    gpu = UnpairedImageFolderDataModule(str(root), **common)
    loader = gpu.train_dataloader()
    assert (loader.num_workers, loader.persistent_workers, loader.prefetch_factor) == (2, True, 4)
    assert loader.pin_memory is False  # not requested without a CUDA device
    got = _epochs(loader, 2)
    assert _same(got[0], expected[0]) and _same(got[1], expected[1])
    # Resuming the second epoch after two batches, as a restored run does, continues its order exactly.
    loader.sampler.resume(1, 2 * 2)
    assert _same(list(loader), expected[1][2:])
    assert not [w for w in recwarn if "pin_memory" in str(w.message)]
    # Lightning's save_hyperparameters leaves the constructor's frames, and through them this test's, in a
    # reference cycle; a garbage collection that shuts the workers down from there waits 5 s for each.
    del loader


def test_settings_are_logged_once_on_rank_zero(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_unpaired_folders(tmp_path / "h2z")
    with caplog.at_level(logging.INFO, logger="ganzoo.data.base"):
        datamodule = UnpairedImageFolderDataModule(str(root), image_size=8, load_size=8, num_workers=0)
        datamodule.train_dataloader(), datamodule.val_dataloader(), datamodule.train_dataloader()
    lines = [r.getMessage() for r in caplog.records if r.name == "ganzoo.data.base"]
    cpus = ganzoo.cpus.available_cpus()
    assert lines == [
        f"data loaders for a cpu run, {cpus} CPU{'s' * (cpus > 1)} per process, 1 process on this machine: "
        "0 workers (set), not persistent (auto), no prefetch (auto), no pinned memory (auto)"
    ]

    caplog.clear()
    other = UnpairedImageFolderDataModule(str(root), image_size=8, load_size=8, batch_size=2, num_workers=0)
    other._processes = lambda: (2, 1)  # process 1 of a two-process run
    with caplog.at_level(logging.INFO, logger="ganzoo.data.base"):
        other.train_dataloader()
    assert not [r for r in caplog.records if r.name == "ganzoo.data.base"]
