"""The offline evaluator learns Fashion-MNIST: the classifier behind ganzoo's default FID reaches 90% test accuracy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule
from ganzoo.metrics.classifier import ClassifierRecipe, cached_classifier

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="needs Fashion-MNIST (`make install` adds it)"),
]


def test_fashion_mnist_evaluator_reaches_90_percent(fashion_mnist_evaluator: Path, tmp_path: Path) -> None:
    data = FashionMNISTDataModule(data_dir=str(tmp_path / "no-local-data"), image_size=32)
    data.setup()
    # The session's classifier (trained by the fixture): what every evaluation on real Fashion-MNIST measures with.
    start = time.monotonic()
    _, accuracy, path = cached_classifier(data, fashion_mnist_evaluator, ClassifierRecipe(), "cpu")
    print(f"Fashion-MNIST evaluator: test accuracy {accuracy:.4f} ({path.name})")
    assert accuracy >= 0.90
    assert time.monotonic() - start < 10  # loaded from the cache, not trained again
    assert cached_classifier(data, fashion_mnist_evaluator, ClassifierRecipe(), "cpu")[2] == path
