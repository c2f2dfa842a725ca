"""``python -m ganzoo.evaluate`` on images (.npz and folders), and a real process's one-line error (the messages of
every case: tests/unit/test_errors.py and tests/unit/test_mistakes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import write_png

from ganzoo.data.fashion_mnist import FashionMNISTDataModule
from ganzoo.evaluate import load_images
from ganzoo.metrics.classifier import dataset_tensors
from tests.conftest import cli_env, run_cli

FAST = ("metrics=classifier", "metrics.evaluation.batch_size=16")


def val_images(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    data = FashionMNISTDataModule(data_dir=str(data_dir), image_size=32, system_dir=None, download=False)
    data.setup()
    return dataset_tensors(data.eval_dataset("val"))


def evaluate_images(images: Path, tmp_path: Path, data_dir: Path) -> dict:
    out = tmp_path / f"{images.name}.json"
    run_cli(
        "evaluate",
        f"images={images}",
        "data=fashion_mnist",
        *FAST,
        f"out={out}",
        "device=cpu",
        env=cli_env(data_dir, GANZOO_CACHE=str(tmp_path / "cache")),
    )
    return json.loads(out.read_text())


def test_images_from_npz_and_folder(tiny_data_dir: Path, tmp_path: Path) -> None:
    images, labels = val_images(tiny_data_dir)  # the 64 val images: the real statistics themselves
    np.savez(tmp_path / "real.npz", x=images.numpy(), y=labels.numpy())
    # (N, H, W, C) and another size are accepted too.
    noise = torch.randint(0, 256, (64, 40, 40, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    np.savez(tmp_path / "noise.npz", x=noise.numpy())
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, image in enumerate(images):
        write_png(image, str(folder / f"{i:03d}.png"))

    real = evaluate_images(tmp_path / "real.npz", tmp_path, tiny_data_dir)
    from_folder = evaluate_images(folder, tmp_path, tiny_data_dir)
    random = evaluate_images(tmp_path / "noise.npz", tmp_path, tiny_data_dir)
    assert real["num_images"] == 64 and real["real"]["split"] == "val" and real["extractor"] == "fmnist"
    assert abs(real["metrics"]["val/fid_fmnist"]) < 1e-4 * random["metrics"]["val/fid_fmnist"]
    # The real images themselves lie in the real balls and cover every one of them; noise lies in none.
    assert [real["metrics"][f"val/{name}_fmnist"] for name in ("precision", "recall", "coverage")] == [1.0] * 3
    assert real["metrics"]["val/density_fmnist"] == pytest.approx(1.0, abs=0.1)
    assert random["metrics"]["val/precision_fmnist"] == random["metrics"]["val/coverage_fmnist"] == 0.0
    # How the numbers were measured: the extractor's weights, the counts, the settings.
    protocol = real["protocol"]
    assert protocol["extractor"] == "fmnist" and protocol["extractor_identity"].startswith("classifier_")
    assert (protocol["num_generated"], protocol["real_data"], protocol["real_split"], protocol["num_real"]) == (
        64, "fmnist", "val", 64,
    )  # fmt: skip
    assert protocol["metrics"] == ["fid", "kid", "is", "classes", "prdc"] and protocol["kid_subset_size"] == 64
    assert (protocol["precision_recall_k"], protocol["density_coverage_k"], protocol["truncation"]) == (3, 5, None)
    assert random["protocol"] == protocol
    assert from_folder["metrics"]["val/fid_fmnist"] == real["metrics"]["val/fid_fmnist"]
    # Labels in the npz give the class accuracy; the real images are predicted as their own classes.
    assert real["metrics"]["val/class_accuracy_fmnist"] > 0.8
    assert "val/class_accuracy_fmnist" not in random["metrics"]


def test_load_images_converts_layout_size_and_channels(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", x=x)
    images, labels = load_images(tmp_path / "rgb.npz", channels=1, image_size=32)
    assert images.shape == (5, 1, 32, 32) and images.dtype == torch.uint8 and labels is None


def test_evaluate_error_is_one_line_and_exit_status_1() -> None:
    proc = run_cli("evaluate", env=cli_env(), check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: pass exactly one of ckpt=<checkpoint> or images=<folder or .npz>"
    )
