"""FID / KID / IS plumbing: torchmetrics' formulas on ganzoo's extractors, the real-statistics cache, Inception."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from ganzoo.data.fashion_mnist import FashionMNISTDataModule
from ganzoo.errors import ConfigError
from ganzoo.images import to_uint8
from ganzoo.metrics import (
    ClassifierFeatures,
    ClassStatistics,
    Evaluation,
    FeatureMetrics,
    InceptionFeatures,
)
from ganzoo.metrics.classifier import dataset_tensors
from ganzoo.metrics.inception import INCEPTION_URL, InceptionWeightsError, resolve_weights
from tests.conftest import REPO, cli_env
from tests.data.writers import write_fashion_mnist

QUICK = {"epochs": 3}


def fmnist(data_dir: Path) -> FashionMNISTDataModule:
    data = FashionMNISTDataModule(data_dir=str(data_dir), image_size=32, system_dir=None, download=False)
    data.setup()
    return data


@pytest.fixture
def extractor(tiny_data_dir: Path, tmp_path: Path) -> ClassifierFeatures:
    features = ClassifierFeatures("fmnist", **QUICK)
    features.prepare(fmnist(tiny_data_dir), tmp_path / "cache", "cpu")
    return features


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


def test_class_statistics_count_predicted_classes() -> None:
    stats = ClassStatistics(num_classes=4)
    predicted = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])  # class 3 never, class 2 twice its share
    stats.update(nn.functional.one_hot(predicted, 4).float(), labels=torch.tensor([0, 1, 1, 1, 2, 2, 3, 3]))
    values = stats.compute()
    assert float(values["class_coverage"]) == 0.75
    shares = torch.tensor([0.25, 0.25, 0.5])
    assert float(values["class_entropy"]) == pytest.approx(
        float(-(shares * shares.log()).sum() / torch.log(torch.tensor(4.0)))
    )
    assert float(values["class_accuracy"]) == pytest.approx(5 / 8)  # positions 0, 2, 3, 4, 5
    uniform = ClassStatistics(num_classes=4)
    uniform.update(torch.eye(4))
    assert float(uniform.compute()["class_entropy"]) == pytest.approx(1.0)
    assert "class_accuracy" not in uniform.compute()


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


def test_unknown_metric_names_fail_with_the_choices(extractor) -> None:
    with pytest.raises(ConfigError, match=r"unknown metrics \['fd'\]: choose from"):
        FeatureMetrics(extractor, ["fd"])


# ------------------------------------------------------------------------------ Inception


def _network_reachable() -> bool:
    try:
        socket.create_connection(("github.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.cli  # a subprocess run of the entry point
def test_inception_without_weights_offline_fails_fast_with_the_remedy(tiny_data_dir: Path, tmp_path: Path) -> None:
    if _network_reachable():
        pytest.skip("this machine can download the weights, so there is no offline failure to see")
    env = cli_env(tiny_data_dir, TORCH_HOME=str(tmp_path / "torch"))
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganzoo.train",
            "metrics=inception",
            "debug=smoke",
            "trainer.accelerator=cpu",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    expected_path = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert error.startswith("error: Inception weights for FID/IS/KID are missing (the download failed")
    assert INCEPTION_URL in error and str(expected_path) in error and "weights_path" in error
    assert elapsed < 60, f"took {elapsed:.0f}s"
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training


def test_inception_weights_path_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InceptionWeightsError, match=r"nowhere.pth does not exist\): download https://"):
        resolve_weights(str(tmp_path / "nowhere.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InceptionWeightsError, match="downloads are switched off"):
        resolve_weights(None, download=False)
    # A weights file that would run code when unpickled is refused: loads are weights-only.
    rogue = tmp_path / "rogue.pth"
    torch.save({"not": ClassStatistics(num_classes=2)}, rogue)
    extractor = InceptionFeatures(weights_path=str(rogue))
    with pytest.raises(InceptionWeightsError, match="is not the Inception weights file"):
        extractor.prepare(None, tmp_path, "cpu")


def test_inception_from_a_local_file_equals_torchmetrics(random_inception_weights: Path, tmp_path: Path) -> None:
    extractor = InceptionFeatures(weights_path=str(random_inception_weights))
    extractor.prepare(None, tmp_path, "cpu")
    generator = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=generator)
    fake = to_uint8(torch.rand(6, 1, 32, 32, generator=generator) * 2 - 1)  # grey images are repeated to RGB
    ours = FeatureMetrics(extractor, ["fid", "is"], is_splits=2)
    ours.update_real(real)
    ours.load_real_state(ours.real_state())
    ours.update_fake(fake)
    values = ours.compute(seed=0)

    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(random_inception_weights))
    fid.update(real, real=True)
    fid.update(fake.expand(-1, 3, -1, -1), real=False)
    logits = NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"], str(random_inception_weights))
    inception_score = InceptionScore(feature=logits, splits=2)
    inception_score.update(fake.expand(-1, 3, -1, -1))
    torch.manual_seed(0)
    assert values["fid"] == pytest.approx(float(fid.compute()), rel=1e-5) and values["fid"] > 0
    assert values["is"] == pytest.approx(float(inception_score.compute()[0]), rel=1e-5)


# ------------------------------------------------------------------------------ the Fashion-MNIST evaluator


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
