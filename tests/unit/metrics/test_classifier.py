"""The evaluator classifier: trained for any labelled DataModule, refused for unlabelled data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganzoo.errors import ConfigError
from ganzoo.metrics import ClassifierFeatures


def test_the_evaluator_recipe_works_for_any_labelled_datamodule(tiny_data_dir: Path, tmp_path: Path) -> None:
    from ganzoo.data.cifar import CIFAR10DataModule

    data = CIFAR10DataModule(data_dir=str(tiny_data_dir), image_size=32, download=False)
    data.setup()
    extractor = ClassifierFeatures("cifar10", epochs=2)
    before = torch.get_rng_state()
    extractor.prepare(data, tmp_path, "cpu")
    assert torch.equal(torch.get_rng_state(), before)  # training it leaves the run's random stream alone
    assert extractor.num_logits == 10 and extractor.cache_file is not None
    assert extractor.cache_file.name.startswith("cifar10-32px-3ch-classifier-")
    features, logits = extractor(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert features.shape == (2, 128) and logits.shape == (2, 10)


def test_unlabeled_data_has_no_evaluator_classifier(tiny_data_dir: Path, tmp_path: Path) -> None:
    from ganzoo.data.folders import ImageFolderDataModule

    data = ImageFolderDataModule(data_dir=str(tiny_data_dir / "images"), image_size=32, num_classes=0)
    with pytest.raises(ConfigError, match="unlabeled.*use metrics=inception"):
        ClassifierFeatures("folder").prepare(data, tmp_path, "cpu")
