"""Shared fixtures: tiny datasets in real on-disk formats, and running the real CLIs in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.writers import (
    write_cifar10,
    write_cifar100,
    write_fashion_mnist,
    write_image_folder,
    write_unpaired_folders,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``paths.data_dir`` holding tiny Fashion-MNIST, CIFAR-10/100 and an image folder in their real formats."""
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, n_train=256, n_test=64)
    write_cifar10(root, n_train=64, n_test=32)
    write_cifar100(root, n_train=200, n_test=100)
    write_image_folder(root / "images", n=72, size=(80, 72))
    write_unpaired_folders(root / "horse2zebra", n_train_a=6, n_train_b=5, n_test_a=3, n_test_b=2)
    return root


def cli_env(data_dir: Path | None = None, home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: no inherited W&B settings, data from ``data_dir``."""
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
    """A ``paths.cache_dir`` shared by the tests on real Fashion-MNIST: its evaluator classifier trains once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file for torchmetrics' InceptionV3 with random values (the real ones cannot be downloaded here).

    The numbers it gives mean nothing, but every code path is the one the real file takes.
    """
    from tests.inception_weights import write_random_inception_weights

    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth")
