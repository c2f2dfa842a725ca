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
    # One worker under pytest-xdist: the learning tests share the evaluator classifier trained here (evaluator_cache).
    pytest.mark.xdist_group("real_fashion_mnist"),
]


def test_fashion_mnist_evaluator_reaches_90_percent(evaluator_cache: Path, tmp_path: Path) -> None:
    data = FashionMNISTDataModule(data_dir=str(tmp_path / "no-local-data"), image_size=32)
    data.setup()
    _, accuracy, path = cached_classifier(data, evaluator_cache, ClassifierRecipe(), "cpu")
    print(f"Fashion-MNIST evaluator: test accuracy {accuracy:.4f} ({path.name})")
    assert accuracy >= 0.90
    # The second call loads the cached classifier instead of training again.
    start = time.monotonic()
    assert cached_classifier(data, evaluator_cache, ClassifierRecipe(), "cpu")[1] == accuracy
    assert time.monotonic() - start < 10
