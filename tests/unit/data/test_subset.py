"""``data.train_fraction``: a fixed subset of the train split (the same for every seed and augmentation), the
evaluation's splits untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganzoo.data.fashion_mnist import FashionMNISTDataModule
from ganzoo.data.subset import TrainSubset, check_fraction, subset_indices
from ganzoo.data.tensor_dataset import TensorImageDataset
from ganzoo.errors import ConfigError


def test_subset_is_fixed_sized_and_nested() -> None:
    tenth, fifth = subset_indices(1000, 0.1), subset_indices(1000, 0.2)
    assert len(tenth) == 100 and len(fifth) == 200 and len(subset_indices(1000, 0.0001)) == 1
    assert torch.equal(tenth, subset_indices(1000, 0.1))  # no seed or state: the same every time
    assert set(tenth.tolist()) <= set(fifth.tolist())
    assert torch.equal(tenth, tenth.sort().values) and len(set(tenth.tolist())) == 100
    assert tenth.max() > 800  # spread over the split, not its first tenth


def test_fraction_is_checked() -> None:
    assert check_fraction(None) is None and check_fraction(1) == 1.0
    for bad in (0, 1.5, -0.1, "0.1", True):
        with pytest.raises(ConfigError, match=r"^data\.train_fraction=.* must lie in \(0, 1\].*e\.g\. 0\.1"):
            check_fraction(bad)


def test_subset_items_keep_their_augmentation_seeds() -> None:
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    dataset = TensorImageDataset(images, torch.arange(10), 8, 1, train=True, flip=True)
    subset = TrainSubset(dataset, torch.tensor([2, 5, 7]))
    assert len(subset) == 3
    for position, source in enumerate((2, 5, 7)):
        for seed in (0, 1, 2, 3):
            image, label = subset[(position, seed)]
            expected_image, expected_label = dataset[(source, seed)]
            assert torch.equal(image, expected_image) and int(label) == int(expected_label) == source


def test_train_loader_takes_the_fraction_and_evaluation_the_whole_split(tiny_data_dir: Path) -> None:
    part = FashionMNISTDataModule(
        str(tiny_data_dir), system_dir=None, download=False, batch_size=8, train_fraction=0.25
    )
    n = 256
    assert len(part.eval_dataset("train")) == n  # real statistics and the evaluator use every image
    assert len(part.train_dataloader().dataset) == len(subset_indices(n, 0.25)) < n
