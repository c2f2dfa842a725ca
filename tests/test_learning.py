"""DCGAN learns real Fashion-MNIST: its samples move measurably towards the data, and D stays informative.

The yardstick is a Fréchet distance in the feature space of a small classifier trained on Fashion-MNIST
itself (torchmetrics' FID with that classifier as the feature extractor). Inception features describe
ImageNet photos and cannot be downloaded here; features of a classifier that separates the ten clothing
classes measure what matters for these images, and its predictions tell whether samples cover the classes.
The untrained generator (same config, fresh initialisation) is the baseline.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torchmetrics.image.fid import FrechetInceptionDistance

from ganzoo.checkpoint import load_model
from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule
from ganzoo.images import from_uint8
from ganzoo.metrics.classifier import ClassifierFeatures, predict, train_classifier
from tests.conftest import cli_env, run_cli

STEPS = 400
N_EVAL = 2000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="needs Fashion-MNIST (`make install` adds it)"),
]


def classifier_fid(features: ClassifierFeatures, real: torch.Tensor, fake: torch.Tensor) -> float:
    metric = FrechetInceptionDistance(feature=features, reset_real_features=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def test_dcgan_learns_fashion_mnist(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli(
        "train",
        f"trainer.max_steps={STEPS}",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
        f"callbacks.sample_grid.every_n_steps={STEPS}",
        f"callbacks.model_checkpoint.every_n_train_steps={STEPS}",
        f"hydra.run.dir={run_dir}",
        env=cli_env(tmp_path / "no-local-data"),  # so the Debian copy of the real data is used
        timeout=900,
    )
    trained = load_model(run_dir / "checkpoints" / "last.ckpt")
    torch.manual_seed(0)
    untrained = instantiate(trained.model_config, _convert_="all").eval()

    data = FashionMNISTDataModule(data_dir=str(tmp_path / "no-local-data"), image_size=32)
    data.setup()
    classifier = train_classifier(from_uint8(data.train_set.images), data.train_set.labels, num_classes=10, epochs=3)
    test_images, test_labels = from_uint8(data.val_set.images), data.val_set.labels
    accuracy = float((predict(classifier, test_images).argmax(1) == test_labels).float().mean())
    assert accuracy > 0.8, f"the yardstick classifier itself is too weak ({accuracy:.3f})"

    features = ClassifierFeatures(classifier)
    real = test_images[:N_EVAL]
    z = trained.sample_latent(N_EVAL, generator=torch.Generator().manual_seed(1))
    fake_trained, fake_untrained = trained.generate(z=z), untrained.generate(z=z)
    fid_trained = classifier_fid(features, real, fake_trained)
    fid_untrained = classifier_fid(features, real, fake_untrained)
    fid_real_halves = classifier_fid(features, test_images[:N_EVAL], test_images[N_EVAL : 2 * N_EVAL])
    print(
        f"classifier acc {accuracy:.3f}; FID untrained {fid_untrained:.2f} -> trained {fid_trained:.2f} "
        f"(real vs real {fid_real_halves:.2f})"
    )
    assert fid_trained < 0.35 * fid_untrained

    # The samples spread over the clothing classes instead of collapsing onto a few.
    shares = torch.bincount(predict(classifier, fake_trained).argmax(1), minlength=10).float() / N_EVAL
    assert int((shares >= 0.02).sum()) >= 8, shares

    # D has not collapsed to a constant: it still tells real from generated images apart, and is not saturated.
    with torch.no_grad():
        logits = torch.cat([trained.discriminator(real[:500]), trained.discriminator(fake_trained[:500])])
    assert logits.std() > 0.1
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/d_real")]
    late = rows[len(rows) // 2 :]
    d_real = sum(float(r["train/d_real"]) for r in late) / len(late)
    d_fake = sum(float(r["train/d_fake"]) for r in late) / len(late)
    assert 0.1 < d_fake < d_real < 0.99, (d_real, d_fake)
