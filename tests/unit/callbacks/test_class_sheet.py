"""ClassSheet in real tiny fits of a class-conditional BigGAN (32 px, 3 classes): one row per class from the same
latents, the rows it picks, its seed and truncation, and the models it leaves alone."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback, LightningModule
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import ClassSheet
from ganzoo.errors import ConfigError
from ganzoo.models.biggan import BigGAN
from tests.builders import quiet_trainer, read_png, tiny_biggan, tiny_dcgan

SIZE = 32  # BigGAN's smallest resolution
CELL = SIZE + 2  # a grid cell: the image and 2 px of padding


def labelled_images(size: int = SIZE, num_classes: int = 3) -> DataLoader:
    """8 random grey images in [-1, 1] with labels 0, 1, 2, ..., batches of 2."""
    images = torch.rand(8, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return DataLoader(TensorDataset(images, torch.arange(8) % num_classes), batch_size=2)


def fit(root: Path, model: LightningModule, callbacks: list[Callback], steps: int = 1) -> L.Trainer:
    torch.manual_seed(0)
    trainer = quiet_trainer(root, max_steps=steps, callbacks=callbacks)
    size = SIZE if isinstance(model, BigGAN) else 16
    trainer.fit(model, labelled_images(size))
    return trainer


def cell(grid: torch.Tensor, row: int, column: int) -> torch.Tensor:
    """The image in ``row``, ``column`` of a grid of SIZE px images."""
    top, left = 2 + row * CELL, 2 + column * CELL
    return grid[:, top : top + SIZE, left : left + SIZE]


def test_one_row_per_class_up_to_max_classes_and_one_column_per_latent(tmp_path: Path) -> None:
    sheet = ClassSheet(every_n_steps=0, samples_per_class=3, max_classes=2)
    fit(tmp_path, tiny_biggan(num_classes=3), [sheet], steps=1)
    folder = tmp_path / "class_sheets"  # the default folder
    assert sorted(p.name for p in folder.glob("*.png")) == ["last.png", "step_0000000.png", "step_0000001.png"]
    assert sheet.last_written == folder / "step_0000001.png"
    grid = read_png(folder / "last.png")
    assert grid.shape == (1, 2 * CELL + 2, 3 * CELL + 2)  # classes 0 and 1 (max_classes), 3 latents each
    # Rows show different classes, columns different latents.
    assert not torch.equal(cell(grid, 0, 0), cell(grid, 1, 0))
    assert not torch.equal(cell(grid, 0, 0), cell(grid, 0, 1))


def test_listed_classes_are_the_rows_and_every_row_has_the_same_latents(tmp_path: Path) -> None:
    fit(tmp_path, tiny_biggan(), [ClassSheet(every_n_steps=0, samples_per_class=2, classes=[2, 0, 2])])
    grid = read_png(tmp_path / "class_sheets" / "last.png")
    assert grid.shape == (1, 3 * CELL + 2, 2 * CELL + 2)
    for column in range(2):
        assert torch.equal(cell(grid, 0, column), cell(grid, 2, column))  # class 2 twice: the same images
        assert not torch.equal(cell(grid, 0, column), cell(grid, 1, column))


def test_seed_and_truncation_choose_the_latents(tmp_path: Path) -> None:
    settings = {"a": {"seed": 1}, "b": {"seed": 1}, "seed2": {"seed": 2}, "truncated": {"seed": 1, "truncation": 0.1}}
    for name, options in settings.items():
        sheet = ClassSheet(every_n_steps=0, samples_per_class=2, dirpath=str(tmp_path / name), **options)
        fit(tmp_path / name, tiny_biggan(), [sheet], steps=1)
    a, b, seed2, truncated = (read_png(tmp_path / name / "step_0000000.png") for name in settings)
    assert torch.equal(a, b)
    assert not torch.equal(a, seed2) and not torch.equal(a, truncated)


def test_a_class_the_model_does_not_have_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"callbacks\.class_sheet\.classes has \[3\], outside 0\.\.2"):
        fit(tmp_path, tiny_biggan(), [ClassSheet(every_n_steps=0, classes=[0, 3])])
    assert not list(tmp_path.rglob("*.png"))


def test_models_without_classes_are_left_alone(tmp_path: Path) -> None:
    sheet = ClassSheet(every_n_steps=1, samples_per_class=2)
    assert sheet.applies_to(tiny_biggan(num_classes=3))
    assert not sheet.applies_to(tiny_biggan(num_classes=1))
    assert not sheet.applies_to(tiny_dcgan())
    fit(tmp_path, tiny_dcgan(), [sheet], steps=2)  # an unconditional DCGAN: nothing to show
    assert sheet.last_written is None and not (tmp_path / "class_sheets").exists()
