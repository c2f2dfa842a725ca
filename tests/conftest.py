"""Shared fixtures: tiny datasets in real on-disk formats, and running the real CLIs in subprocesses."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.data.writers import (
    write_aligned_pairs,
    write_cifar10,
    write_cifar100,
    write_fashion_mnist,
    write_image_folder,
    write_unpaired_folders,
)

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, a worker and every process it starts (entry points, DDP ranks, the notebook's kernel) get
    the worker's share of the CPUs as ``OMP_NUM_THREADS``, unless it is set: otherwise each would take every CPU
    while the other workers' processes do the same, and torch's threads would spin waiting for each other."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if "PYTEST_XDIST_WORKER" in os.environ and workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        share = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The tests that take minutes start first: under pytest-xdist the short ones then fill the other workers'
    # time instead of one long test running alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``paths.data_dir`` holding tiny Fashion-MNIST, CIFAR-10/100, an image folder, horse2zebra (unpaired) and
    facades (paired) in their real formats."""
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, n_train=256, n_test=64)
    write_cifar10(root, n_train=64, n_test=32)
    write_cifar100(root, n_train=200, n_test=100)
    write_image_folder(root / "images", n=72, size=(80, 72))
    write_unpaired_folders(root / "horse2zebra", n_train_a=6, n_train_b=5, n_test_a=3, n_test_b=2)
    write_aligned_pairs(root / "facades", n_train=6, n_val=4, size=72)  # pix2pix's layout: A|B side by side
    return root


def cli_env(data_dir: Path | None = None, home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: no inherited W&B settings, data from ``data_dir`` (and, under pytest-xdist,
    the worker's ``OMP_NUM_THREADS``: see :func:`pytest_configure`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "GANZOO_DATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["HYDRA_FULL_ERROR"] = "0"
    if data_dir is not None:
        env["GANZOO_DATA"] = str(data_dir)
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(
    module: str, *overrides: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ganzoo.<module> <overrides>`` from the repository root, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", f"ganzoo.{module}", *overrides],
        cwd=REPO,
        stdin=subprocess.DEVNULL,  # nothing may wait for input from a terminal
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ganzoo.{module} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


QUIET = ("debug=smoke", "trainer.accelerator=cpu")


@pytest.fixture(scope="session")
def evaluator_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``paths.cache_dir`` for evaluator classifiers, shared by the tests of a session (by all pytest-xdist
    workers): each classifier is trained once."""
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the workers' basetemps are folders of one session folder
    cache = root / "evaluator-cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def fashion_mnist_evaluator(evaluator_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``evaluator_cache`` holding the default evaluator of real Fashion-MNIST at 32 px (the classifier behind
    ``val/fid_fmnist``), trained here on first use; when several pytest-xdist workers need it at once, one trains
    it and the others wait for it."""
    import fcntl

    from ganzoo.data.fashion_mnist import FashionMNISTDataModule
    from ganzoo.metrics.classifier import ClassifierRecipe, cached_classifier

    with open(evaluator_cache / "fashion-mnist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = FashionMNISTDataModule(data_dir=str(tmp_path_factory.mktemp("no-local-data")), image_size=32)
        data.setup()
        with process_state_kept():
            cached_classifier(data, evaluator_cache, ClassifierRecipe(), "cpu")
    return evaluator_cache


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file for torchmetrics' InceptionV3 with random values (the real ones cannot be downloaded here).

    The numbers it gives mean nothing, but every code path is the one the real file takes.
    """
    from tests.inception_weights import write_random_inception_weights

    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth")


@pytest.fixture(scope="session")
def dcgan_smoke_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of one ``python -m ganzoo.train debug=smoke trainer.accelerator=cpu`` run (DCGAN on tiny
    Fashion-MNIST: 3 iterations, evaluation, sheets, ``checkpoints/last.ckpt`` at step 3), trained once for the
    whole session. Tests read its outputs and never write into it."""
    run_dir = tmp_path_factory.mktemp("dcgan_smoke_run")
    run_cli("train", *QUIET, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    return run_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` (step 3) of a debug=smoke DCGAN run with small networks and no evaluation (``'~metrics'``) on
    the tiny Fashion-MNIST, trained once in this process for the session. Tests read it and never write into it."""
    from ganzoo.train import compose_config, train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    with process_state_kept(threads=1):
        train(compose_config([*QUIET, *TINY, "~metrics", f"paths.data_dir={tiny_data_dir}"], output_dir=str(run_dir)))
    return run_dir / "checkpoints" / "last.ckpt"


#: DCGAN networks of 4 base channels: for runs whose networks' size does not matter to the test, which then take a
#: fraction of the time on CPUs.
SMALL_NETS = ("model.generator.ngf=4", "model.discriminator.ndf=4")
#: Small networks and batches for ``ganzoo.train.train`` runs inside the test process: an iteration takes
#: milliseconds, a run of a few iterations about a second.
TINY = (*SMALL_NETS, "data.batch_size=4", "data.num_workers=0")

#: Environment variables a training run sets for its own process (Lightning's seed, ganzoo's resume choice, the
#: threads of DDP ranks).
RUN_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "OMP_NUM_THREADS", "GANZOO_RESUME")


@contextlib.contextmanager
def process_state_kept(threads: int | None = None) -> Iterator[None]:
    """Inside: an entry point may change what it changes for its whole process (torch threads, flush-denormal,
    the global random generators, :data:`RUN_ENV`); on leaving, the test process gets its own values back. With
    ``threads``, torch runs on that many threads inside, and ``OMP_NUM_THREADS`` says so (an entry point honours it):
    tiny networks gain nothing from a second thread, and on a busy machine two threads mostly wait for each other."""
    import random

    import numpy as np
    import torch

    own_threads = torch.get_num_threads()
    rng = torch.get_rng_state(), random.getstate(), np.random.get_state()
    env = {name: os.environ.get(name) for name in RUN_ENV}
    try:
        if threads is not None:
            os.environ["OMP_NUM_THREADS"] = str(threads)
            torch.set_num_threads(threads)
        yield
    finally:
        torch.set_num_threads(own_threads)
        torch.set_flush_denormal(False)  # torch's default; ganzoo.train.train switches it on
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def train_in_process(tiny_data_dir: Path) -> Iterator[Callable[..., dict[str, float]]]:
    """``train_in_process(run_dir, *overrides, data_dir=None)``: the run ``python -m ganzoo.train <overrides>
    hydra.run.dir=<run_dir>`` would do, composed by Hydra and trained by :func:`ganzoo.train.train` in this process
    (no Hydra run: no ``.hydra`` folder, no ``train.log``); datasets from ``data_dir`` (default: ``tiny_data_dir``).
    Returns the final metrics; an error is raised as the exception itself. The runs keep torch on one thread
    (``OMP_NUM_THREADS=1``, which the run honours): tiny networks gain nothing from a second one, and on a busy
    machine two threads mostly wait for each other. The process-wide settings the runs change are restored after
    the test."""
    from ganzoo.train import compose_config, train

    def run(run_dir: Path, *overrides: str, data_dir: Path | None = None) -> dict[str, float]:
        data = data_dir if data_dir is not None else tiny_data_dir
        return train(compose_config([*overrides, f"paths.data_dir={data}"], output_dir=str(run_dir)))

    with process_state_kept(threads=1):
        yield run


@pytest.fixture
def run_log(tmp_path: Path) -> Iterator[Path]:
    """A log file on the root logger, as Hydra's ``<run dir>/train.log`` is during a ``python -m ganzoo.train`` run
    (what ganzoo writes to "the run's log files" goes there); removed after the test."""
    path = tmp_path / "train.log"
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def wandb_records(path: Path) -> list[Any]:
    """The records of a ``run-<id>.wandb`` file: W&B's LevelDB-style log of protobuf ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, chunks, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block never starts a record header in its last 6 bytes
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full
            chunks.append(chunk)
        elif kind == 2:  # first
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            chunks.append(pending + chunk)
    return [wandb_internal_pb2.Record.FromString(c) for c in chunks]


def fit_tiny_dcgan(root: Path, steps: int, callbacks: list[Any]) -> Any:
    """Fit ``tests.builders.tiny_dcgan`` (16 px, 1 channel, seed 0) for ``steps`` iterations on 32 random images,
    batch 8, with ``callbacks`` and, after them, a :class:`~ganzoo.callbacks.GANCheckpoint` saving
    ``<root>/checkpoints/step_step=<N>.ckpt`` every 2 iterations and ``last.ckpt``; returns the Trainer."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ganzoo.callbacks import GANCheckpoint
    from tests.builders import quiet_trainer, tiny_dcgan

    torch.manual_seed(0)
    model = tiny_dcgan()
    data = DataLoader(TensorDataset(torch.rand(32, 1, 16, 16) * 2 - 1, torch.zeros(32)), batch_size=8)
    checkpoints = GANCheckpoint(
        dirpath=root / "checkpoints", filename="step_{step}", every_n_train_steps=2, save_top_k=-1, save_last=True
    )
    trainer = quiet_trainer(root, max_steps=steps, callbacks=[*callbacks, checkpoints], enable_checkpointing=True)
    trainer.fit(model, data)
    return trainer


def compose_entry_point(config_name: str, *overrides: str) -> Any:
    """The config ``python -m ganzoo.<config_name> <overrides>`` runs with (``conf/<config_name>.yaml``). A Hydra
    entry point called with it (``ganzoo.sample.main(cfg)``) runs its body in this process, as Hydra would, with
    ganzoo's ``error: <one line>`` and exit status 1 for a ganzoo error (a ``SystemExit``)."""
    from hydra import compose, initialize_config_dir

    from ganzoo.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


@dataclasses.dataclass(frozen=True)
class EntryPointRun:
    """What a run of an entry point's body left: its exit status (0: it returned) and what it printed."""

    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The one line a ganzoo error ends with: exit status 1, ``error: <message>`` last on stderr, no traceback."""
        assert self.code == 1, (self.code, self.err[-3000:])
        assert "Traceback" not in self.err, self.err[-3000:]
        line = self.err.strip().splitlines()[-1]
        assert line.startswith("error: "), self.err[-3000:]
        return line


@pytest.fixture
def entry_point(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., EntryPointRun]:
    """``entry_point(module, *overrides, **env)``: the body of ``python -m ganzoo.<module> <overrides>`` run in this
    process with the environment variables ``env`` set (for the rest of the test): the composed config goes
    through the entry point's own ``main`` (ganzoo's ``error: <one line>`` and exit status 1 included), as Hydra
    calls it. ``hydra.run.dir=<dir>`` becomes a training run's output folder. torch keeps one thread, and the
    process-wide settings a run changes are restored afterwards. Hydra's own handling around ``main`` (command
    line parsing, logging set-up, the run folder) is what the subprocess runs in tests/cli check."""

    def run(module: str, *overrides: str, **env: str) -> EntryPointRun:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        run_dirs = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")]
        rest = [o for o in overrides if not o.startswith("hydra.run.dir=")]
        if module == "train":
            from ganzoo.train import compose_config

            cfg = compose_config(rest, output_dir=run_dirs[-1] if run_dirs else "outputs/interactive")
        else:
            cfg = compose_entry_point(module, *rest)
        main = importlib.import_module(f"ganzoo.{module}").main
        capsys.readouterr()
        code = 0
        with process_state_kept(threads=1):
            try:
                main(cfg)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
        captured = capsys.readouterr()
        return EntryPointRun(code, captured.out, captured.err)

    return run
