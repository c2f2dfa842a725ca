"""FID / KID / IS on features: torchmetrics' formulas on ganzoo's extractors; precision, recall, density and
coverage: the reference implementation's."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from prdc import compute_prdc
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


def _features(extractor, images: torch.Tensor) -> torch.Tensor:
    return extractor(images)[0]


def test_prdc_equals_the_reference_implementation_on_the_same_features(tiny_data_dir: Path, extractor) -> None:
    data = fmnist(tiny_data_dir)
    real, _ = dataset_tensors(data.eval_dataset("train"))  # 256 images
    held_out, _ = dataset_tensors(data.eval_dataset("val"))
    fake = torch.cat([held_out[:32], held_out[32:].flip(-1)])  # 32 images like the real ones, 32 unlike them
    ours = FeatureMetrics(extractor, ["prdc"])
    for start in range(0, len(real), 100):  # uneven batches on both sides
        ours.update_real(real[start : start + 100])
    ours.load_real_state(ours.real_state())
    for start in range(0, len(fake), 24):
        ours.update_fake(fake[start : start + 24])
    values = ours.compute()

    real_features, fake_features = _features(extractor, real).numpy(), _features(extractor, fake).numpy()
    at_3 = compute_prdc(real_features, fake_features, nearest_k=3)
    at_5 = compute_prdc(real_features, fake_features, nearest_k=5)
    # The reference computes distances in float64, ganzoo in the features' float32: a point within float32
    # rounding of a ball's surface may fall on its other side, which moves a value by one point.
    assert values["precision"] == pytest.approx(at_3["precision"], abs=1.01 / len(fake))
    assert values["recall"] == pytest.approx(at_3["recall"], abs=1.01 / len(real))
    assert values["density"] == pytest.approx(at_5["density"], abs=1.01 / (5 * len(fake)))
    assert values["coverage"] == pytest.approx(at_5["coverage"], abs=1.01 / len(real))
    assert set(values) == {"precision", "recall", "density", "coverage"}
    assert 0.3 < values["precision"] < 0.7 and 0.3 < values["coverage"] < 0.9  # not a comparison of zeros or ones


def test_kid_and_prdc_share_one_copy_of_the_real_features_and_give_their_own_numbers(
    tiny_data_dir: Path, extractor
) -> None:
    data = fmnist(tiny_data_dir)
    real, _ = dataset_tensors(data.eval_dataset("train"))
    fake, _ = dataset_tensors(data.eval_dataset("val"))
    values = {}
    for names in (["kid", "prdc"], ["kid"], ["prdc"]):
        metrics = FeatureMetrics(extractor, names, kid_subsets=10, kid_subset_size=50)
        metrics.update_real(real)
        state = metrics.real_state()
        assert list(state) == ["kid.real_features"] and state["kid.real_features"].shape == (len(real), 128)
        metrics.load_real_state(state)
        metrics.update_fake(fake)
        values[tuple(names)] = metrics.compute(seed=1)
        if names == ["kid", "prdc"]:
            assert metrics.kid is not None and metrics.real_manifold is not None
            # KID's real side and prdc's are the same tensor: the features are held once.
            assert metrics.kid.real_features[0].data_ptr() == metrics.real_manifold.real.data_ptr()
    assert values[("kid", "prdc")] == {**values[("kid",)], **values[("prdc",)]}


def test_the_real_radii_are_computed_once_per_real_state(tiny_data_dir: Path, extractor) -> None:
    data = fmnist(tiny_data_dir)
    real, _ = dataset_tensors(data.eval_dataset("train"))
    fake, _ = dataset_tensors(data.eval_dataset("val"))
    metrics = FeatureMetrics(extractor, ["fid", "prdc"])
    metrics.update_real(real)
    state = metrics.real_state()
    metrics.load_real_state(state)
    evaluations, manifolds = [], []
    for images in (fake, fake.flip(-1), fake):
        metrics.reset()
        metrics.update_fake(images)
        evaluations.append(metrics.compute())
        manifolds.append(metrics.real_manifold)
    assert manifolds[0] is not None and manifolds[0] is manifolds[1] is manifolds[2]
    assert evaluations[0] == evaluations[2] != evaluations[1]
    # New real statistics get radii of their own.
    metrics.load_real_state({k: v[: len(real) // 2] if k == "kid.real_features" else v for k, v in state.items()})
    metrics.reset()
    metrics.update_fake(fake)
    metrics.compute()
    assert metrics.real_manifold is not manifolds[0] and metrics.real_manifold.radii.shape == (2, len(real) // 2)


def test_prdc_is_nan_with_too_few_images_for_its_neighbours(tiny_data_dir: Path, extractor, caplog) -> None:
    data = fmnist(tiny_data_dir)
    real, _ = dataset_tensors(data.eval_dataset("train"))
    metrics = FeatureMetrics(extractor, ["fid", "prdc"])
    metrics.update_real(real)
    metrics.load_real_state(metrics.real_state())
    metrics.update_fake(real[:3])  # recall needs every generated image's 3rd nearest neighbour: 4 images at least
    with caplog.at_level(logging.WARNING, logger="ganzoo.metrics"):
        values = metrics.compute()
    assert math.isfinite(values["fid"]) and all(math.isnan(values[k]) for k in ("precision", "recall", "coverage"))
    assert "need more than 5 real and 3 generated images, got 256 and 3" in caplog.text
    metrics.reset()
    metrics.update_fake(real[:4])
    assert not math.isnan(metrics.compute()["density"])
