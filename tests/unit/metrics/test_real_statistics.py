"""The real-statistics cache: keyed by data, split, size and extractor; exact on reuse; stale files recomputed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from ganzoo.errors import ConfigError
from ganzoo.metrics import ClassifierFeatures, Evaluation
from tests.data.writers import write_fashion_mnist
from tests.unit.metrics.conftest import QUICK, fmnist


def _evaluation(cache: Path, **kwargs) -> Evaluation:
    options = {
        "metrics": ["fid", "kid"],
        "num_samples": 40,
        "batch_size": 16,
        "real_split": "val",
        "cache_dir": str(cache),
    }
    return Evaluation(ClassifierFeatures("fmnist", **QUICK), **{**options, **kwargs})


def test_cached_real_statistics_give_exactly_the_same_fid(tiny_data_dir: Path, tmp_path: Path, caplog) -> None:
    data = fmnist(tiny_data_dir)
    generated = torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    first = _evaluation(tmp_path)
    with caplog.at_level(logging.INFO, logger="ganzoo.metrics"):
        first.setup(data, "cpu")
    assert "computing real statistics of 64 val images" in caplog.text
    cache_file = first.statistics_file
    assert cache_file is not None and cache_file.is_file()
    # The key is readable in the file name: dataset, split, resolution, channels, count, extractor, statistics.
    assert cache_file.name.startswith("fmnist-val-32px-1ch-all-classifier_") and cache_file.name.endswith("-fid+kid.pt")
    computed = first.evaluate_images(generated)

    caplog.clear()
    second = _evaluation(tmp_path)
    with caplog.at_level(logging.INFO, logger="ganzoo.metrics"):
        second.setup(data, "cpu")
    assert "computing real statistics" not in caplog.text
    assert second.evaluate_images(generated) == computed  # exactly, not approximately

    # prdc compares with the real features KID keeps: with both, the same file serves; alone, it keeps only those.
    caplog.clear()
    with_prdc = _evaluation(tmp_path, metrics=["fid", "kid", "prdc"])
    with caplog.at_level(logging.INFO, logger="ganzoo.metrics"):
        with_prdc.setup(data, "cpu")
    assert "computing real statistics" not in caplog.text and with_prdc.statistics_file == cache_file
    values = with_prdc.evaluate_images(generated)
    assert {key: values[key] for key in computed} == computed
    assert set(values) - set(computed) == {
        f"val/{name}_fmnist" for name in ("precision", "recall", "density", "coverage")
    }
    alone = _evaluation(tmp_path, metrics=["prdc"])
    alone.setup(data, "cpu")
    assert alone.statistics_file is not None and alone.statistics_file.name.endswith("-kid.pt")
    assert alone.evaluate_images(generated) == {key: values[key] for key in alone.output_keys()}


def test_stale_or_mismatched_real_statistics_are_recomputed(tmp_path: Path, caplog) -> None:
    write_fashion_mnist(tmp_path / "data", n_train=128, n_test=48, seed=0)
    data = fmnist(tmp_path / "data")
    generated = torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    cache = tmp_path / "cache"
    evaluation = _evaluation(cache)
    evaluation.setup(data, "cpu")
    before = evaluation.evaluate_images(generated)
    key_file = evaluation.statistics_file
    assert key_file is not None

    # Same file names, other images in the val split: same cache key, different data.
    write_fashion_mnist(tmp_path / "other", n_train=128, n_test=48, seed=7)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "data/FashionMNIST/raw" / name).write_bytes(
            (tmp_path / "other/FashionMNIST/raw" / name).read_bytes()
        )
    changed = fmnist(tmp_path / "data")
    stale = _evaluation(cache)
    with caplog.at_level(logging.INFO, logger="ganzoo.metrics"):
        stale.setup(changed, "cpu")
    assert "are stale" in caplog.text and "computing real statistics" in caplog.text
    assert stale.statistics_file == key_file
    assert stale.evaluate_images(generated) != before

    # A file copied under another key is refused too.
    other_key = key_file.with_name(key_file.name.replace("-all-", "-40-"))
    other_key.write_bytes(key_file.read_bytes())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ganzoo.metrics"):
        _evaluation(cache, num_real=40).setup(changed, "cpu")
    assert "saved for another key" in caplog.text


def test_model_and_image_shape_must_match_the_real_statistics(tiny_data_dir: Path, tmp_path: Path) -> None:
    evaluation = _evaluation(tmp_path)
    evaluation.setup(fmnist(tiny_data_dir), "cpu")
    with pytest.raises(ConfigError, match="set data.image_size and data.channels"):
        evaluation.evaluate_images(torch.zeros(8, 3, 64, 64, dtype=torch.uint8))
