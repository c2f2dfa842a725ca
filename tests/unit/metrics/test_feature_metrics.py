"""FID / KID / IS on features: torchmetrics' formulas on ganzoo's extractors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from ganzoo.errors import ConfigError
from ganzoo.metrics import FeatureMetrics
from ganzoo.metrics.classifier import dataset_tensors
from tests.unit.metrics.conftest import fmnist


class Output(nn.Module):
    """One output of a ganzoo extractor, as the feature network torchmetrics runs itself."""

    def __init__(self, extractor: nn.Module, index: int, num_features: int) -> None:
        super().__init__()
        self.extractor, self.index, self.num_features = extractor, index, num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)[self.index]


def test_fid_is_zero_for_a_split_against_itself_and_large_against_noise(tiny_data_dir: Path, extractor) -> None:
    data = fmnist(tiny_data_dir)
    real, _ = dataset_tensors(data.eval_dataset("train"))  # 256 images, 128 features
    held_out, _ = dataset_tensors(data.eval_dataset("val"))
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    metrics = FeatureMetrics(extractor, ["fid", "kid"], kid_subset_size=60)
    metrics.update_real(real)
    metrics.load_real_state(metrics.real_state())
    values = {}
    for name, fake in (("itself", real), ("val split", held_out), ("noise", noise)):
        metrics.reset()
        metrics.update_fake(fake)
        values[name] = metrics.compute()
    assert abs(values["itself"]["fid"]) < 1e-6 * values["noise"]["fid"]
    assert abs(values["itself"]["kid"]) < 0.01 * values["noise"]["kid"]  # KID is unbiased: noise around 0
    # Noise is far further from the data than other images of the same data are.
    assert values["noise"]["fid"] > 5 * values["val split"]["fid"] > 0
    assert values["noise"]["kid"] > 5 * values["val split"]["kid"]


def test_values_equal_torchmetrics_on_the_same_features(tiny_data_dir: Path, extractor) -> None:
    data = fmnist(tiny_data_dir)
    real, _ = dataset_tensors(data.eval_dataset("train"))
    fake, _ = dataset_tensors(data.eval_dataset("val"))
    fake = fake.flip(-1)  # 64 images unlike the real ones
    ours = FeatureMetrics(extractor, ["fid", "kid", "is"], kid_subsets=20, kid_subset_size=50, is_splits=4)
    ours.update_real(real)
    ours.load_real_state(ours.real_state())
    for start in range(0, len(fake), 24):  # uneven batches
        ours.update_fake(fake[start : start + 24])
    values = ours.compute(seed=3)

    dim, classes = extractor.num_features, extractor.num_logits
    fid = FrechetInceptionDistance(feature=Output(extractor, 0, dim))
    kid = KernelInceptionDistance(feature=Output(extractor, 0, dim), subsets=20, subset_size=50)
    inception_score = InceptionScore(feature=Output(extractor, 1, classes), splits=4)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    inception_score.update(fake)
    torch.manual_seed(3)
    kid_mean, kid_std = kid.compute()
    torch.manual_seed(3)
    is_mean, is_std = inception_score.compute()
    assert values["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
    assert values["kid"] == pytest.approx(float(kid_mean), rel=1e-6)
    assert values["kid_std"] == pytest.approx(float(kid_std), rel=1e-5)
    assert values["is"] == pytest.approx(float(is_mean), rel=1e-6)
    assert values["is_std"] == pytest.approx(float(is_std), rel=1e-5)
    assert values["fid"] > 1e-3 and values["kid"] != 0  # the comparison is not between zeros


def test_unknown_metric_names_fail_with_the_choices(extractor) -> None:
    with pytest.raises(ConfigError, match=r"unknown metrics \['fd'\]: choose from"):
        FeatureMetrics(extractor, ["fd"])
