"""Every experiment (``conf/experiment/*.yaml``) trains a few iterations on the tiny datasets, evaluates, writes its
grids and a checkpoint that loads. Each recipe runs through ``ganzoo.train.train`` in this process, composed as
``python -m ganzoo.train experiment=<name>`` composes it: a process start per recipe would add nothing that
tests/cli/test_train.py does not check once."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ganzoo.checkpoint import load_checkpoint_file, load_model
from ganzoo.cli import CONFIG_DIR
from ganzoo.train import compose_config
from tests.builders import read_png, read_rows, steps_of
from tests.conftest import QUIET

Train = Callable[..., dict[str, float]]

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def test_experiments_are_found() -> None:
    expected = {"dcgan_fmnist", "dcgan_cifar10", "dcgan_folder", "cyclegan_fmnist", "cyclegan_horse2zebra"}
    expected |= {"pix2pix_fmnist", "pix2pix_facades"}
    assert expected | {"biggan_cifar10", "biggan_fmnist", "biggan_imagenet128"} <= set(EXPERIMENTS)


def tiny_data_overrides(experiment: str, tiny_data_dir: Path, inception_weights: Path) -> list[str]:
    """What ``experiment`` needs to run a few iterations on the tiny datasets: the recipe's own networks where a
    CPU runs them in seconds, narrower ones where not, Inception from a local file, evaluation at the end."""
    config = compose_config([f"experiment={experiment}"])
    extra = []
    if config.metrics.evaluation.extractor._target_.endswith("InceptionFeatures"):
        # Recipes with Inception metrics run on a local weights file, as on a machine without network;
        # InceptionV3 at 299 px is the slow part on a CPU: evaluate once, at the end, on a few images.
        extra += [f"metrics.evaluation.extractor.weights_path={inception_weights}", "metrics.at_start=false"]
        extra += ["metrics.every_n_steps=0", "metrics.evaluation.num_samples=8", "metrics.evaluation.num_real=8"]
    if config.model._target_.endswith("CycleGAN"):  # the tiny datasets hold a dozen images per domain
        extra += ["data.batch_size=4", "data.num_workers=0"]
        if config.model.generator.ngf > 8:  # horse2zebra's 9-block ResNets at full width: 340 MB per checkpoint
            extra += ["model.generator.ngf=8", "model.discriminator.ndf=8"]
    if config.data.get("train_fraction"):  # 10 % of the 256 tiny training images: 26, fewer than a batch of 64
        extra += ["data.batch_size=8"]
    if config.data.image_size > 64:  # the full recipe's 256 px crops take minutes on a CPU; the code path is the same
        extra += ["data.image_size=64", "data.load_size=72"]
    if config.model._target_.endswith("Pix2Pix"):  # a U-Net deep enough for its images (1x1 at the bottom)
        side = min(config.data.image_size, 64)
        extra += [f"model.generator.num_downs={side.bit_length() - 1}", "data.batch_size=4", "data.num_workers=0"]
        extra += ["model.generator.ngf=8", "model.discriminator.ndf=8"]
    if config.model._target_.endswith("BigGAN"):  # the recipes' widths and batches, shrunk to the tiny datasets
        extra += ["model.batch_size=4", "model.generator.ch=4", "model.discriminator.ch=4", "data.num_workers=0"]
        if config.data.num_classes > 100:  # ImageNet's 1000 classes; the tiny folder is unlabelled
            extra += [f"data.data_dir={tiny_data_dir / 'images'}", "data.num_classes=0"]
        if config.model.num_D_accumulations > 2:  # ImageNet's 8 accumulations of D and G: 2 take the same path
            extra += ["model.num_D_accumulations=2", "model.num_G_accumulations=2"]
    return extra


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_on_tiny_data(
    experiment: str, train_in_process: Train, tiny_data_dir: Path, tmp_path: Path, random_inception_weights: Path
) -> None:
    run_dir = tmp_path / "run"
    extra = tiny_data_overrides(experiment, tiny_data_dir, random_inception_weights)
    config = compose_config([f"experiment={experiment}", *extra])
    inception = config.metrics.evaluation.extractor._target_.endswith("InceptionFeatures")
    translation = config.model._target_.endswith(("CycleGAN", "Pix2Pix"))
    train_in_process(run_dir, f"experiment={experiment}", *QUIET, *extra)
    _, rows = read_rows(run_dir)
    name = "inception" if inception else "fmnist"
    assert steps_of(rows, f"val/fid_{name}") == ([3] if inception else [0, 2, 3])

    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 3
    model = load_model(run_dir / "checkpoints" / "last.ckpt")
    if translation:
        side = config.data.image_size
        images = model.translate(torch.rand(4, config.data.channels, side, side) * 2 - 1, model.directions[0])
        folder = run_dir / "translations"
    else:
        images = model.generate(n=4)
        folder = run_dir / "samples"
    assert images.min() >= -1 and images.max() <= 1 and images.shape[0] == 4
    grids = sorted(folder.glob("step_*.png"))
    assert [p.name for p in grids] == ["step_0000000.png", "step_0000002.png", "step_0000003.png"]
    if not translation:
        side, per_row = images.shape[-1], config.callbacks.sample_grid.get("nrow") or 4
        assert read_png(grids[-1]).shape[-1] == per_row * side + (per_row + 1) * 2  # 4x4 unless nrow says; 2 px pad

    losses = [float(r["train/loss_g"]) for r in rows if r.get("train/loss_g")]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
