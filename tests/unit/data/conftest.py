"""Fixtures writing tiny datasets in their real formats (see tests.data.writers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.writers import write_cifar10, write_cifar100, write_fashion_mnist


@pytest.fixture
def no_system_dir(tmp_path: Path) -> str:
    """A system_dir that does not exist, so the Debian copy of Fashion-MNIST is never used."""
    return str(tmp_path / "no-system-dir")


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    """data_dir holding 64 train + 32 test Fashion-MNIST images in torchvision's layout."""
    root = tmp_path / "fashion"
    write_fashion_mnist(root, n_train=64, n_test=32)
    return root


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    """data_dir holding 50 train + 20 test CIFAR-10 images."""
    root = tmp_path / "cifar10"
    write_cifar10(root, n_train=50, n_test=20)
    return root


@pytest.fixture
def cifar100_root(tmp_path: Path) -> Path:
    """data_dir holding 200 train + 100 test CIFAR-100 images."""
    root = tmp_path / "cifar100"
    write_cifar100(root, n_train=200, n_test=100)
    return root
