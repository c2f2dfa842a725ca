"""TranslationGrid in real tiny fits of a CycleGAN (16 px, grey) on the official unpaired folder layout: the steps
it writes, the sheet's size and its six columns (real, translated, reconstructed images of both domains), and the
models and data it leaves alone (W&B's translation table: tests/test_cyclegan.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import SampleGrid, TranslationGrid
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from ganzoo.images import to_uint8
from tests.builders import quiet_trainer, read_png, tiny_cyclegan, tiny_dcgan
from tests.data.writers import write_unpaired_folders

SIZE = 16
CELL = SIZE + 2  # a grid cell: the image and 2 px of padding


def unpaired_folders(root: Path) -> UnpairedImageFolderDataModule:
    """4 train images per domain; 3 val (test) images of domain A and 2 of domain B, stretched to 16 px grey."""
    folders = write_unpaired_folders(root, n_train_a=4, n_train_b=4, n_test_a=3, n_test_b=2)
    return UnpairedImageFolderDataModule(
        str(folders), image_size=SIZE, load_size=SIZE, channels=1, flip=False, batch_size=1, num_workers=0
    )


def cell(grid: torch.Tensor, row: int, column: int) -> torch.Tensor:
    top, left = 2 + row * CELL, 2 + column * CELL
    return grid[:, top : top + SIZE, left : left + SIZE]


def test_sheet_rows_are_examples_and_columns_real_translated_reconstructed(tmp_path: Path) -> None:
    data = unpaired_folders(tmp_path / "data")
    model = tiny_cyclegan()
    translations = TranslationGrid(every_n_steps=2, num_examples=3)
    samples = SampleGrid(every_n_steps=1)  # for noise-to-image models only
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[translations, samples])
    trainer.fit(model, datamodule=data)

    folder = tmp_path / "translations"  # the default folder
    assert sorted(p.name for p in folder.glob("*.png")) == [
        "last.png",
        "step_0000000.png",
        "step_0000002.png",
        "step_0000003.png",
    ]
    assert translations.last_written == folder / "step_0000003.png"
    assert not (tmp_path / "samples").exists() and samples.last_written is None
    grid = read_png(folder / "last.png")
    assert grid.shape == (1, 3 * CELL + 2, 6 * CELL + 2)  # 3 examples; 6 columns

    # The columns real_A | fake_B | rec_A | real_B | fake_A | rec_B of the first val images of each domain.
    real_a, real_b = data.fixed_examples(3)
    with torch.no_grad():
        fake_b, fake_a = model.translate(real_a, "AtoB"), model.translate(real_b, "BtoA")
        expected = [real_a, fake_b, model.translate(fake_b, "BtoA"), real_b, fake_a, model.translate(fake_a, "AtoB")]
    for column, images in enumerate(expected):
        for row in range(3):
            shown, wanted = cell(grid, row, column).short(), to_uint8(images[row]).short()
            assert (shown - wanted).abs().max() <= 1, (row, column)
    # Domain B has 2 val images: the third example repeats the first.
    assert torch.equal(cell(grid, 2, 3), cell(grid, 0, 3)) and not torch.equal(cell(grid, 2, 0), cell(grid, 0, 0))
    # Training changed the generators: the translations of step 0 were other images.
    first = read_png(folder / "step_0000000.png")
    assert torch.equal(cell(first, 0, 0), cell(grid, 0, 0)) and not torch.equal(cell(first, 0, 1), cell(grid, 0, 1))


def test_without_fixed_examples_or_a_translation_model_nothing_is_written(tmp_path: Path) -> None:
    grid = TranslationGrid(every_n_steps=1, num_examples=2)
    assert grid.applies_to(tiny_cyclegan()) and not grid.applies_to(tiny_dcgan())
    # A plain DataLoader of (A, B) pairs has no fixed examples to show.
    pairs = torch.rand(4, 1, SIZE, SIZE) * 2 - 1, torch.rand(4, 1, SIZE, SIZE) * 2 - 1
    quiet_trainer(tmp_path, max_steps=2, callbacks=[grid]).fit(tiny_cyclegan(), DataLoader(TensorDataset(*pairs)))
    assert grid.last_written is None and not (tmp_path / "translations").exists()


def test_a_one_way_model_gets_input_output_and_target_of_each_val_pair(tmp_path: Path) -> None:
    from ganzoo.data.paired import PairedImageDataModule
    from tests.builders import tiny_pix2pix
    from tests.data.writers import write_aligned_pairs

    side = 32  # the smallest side a U-Net takes
    root = write_aligned_pairs(tmp_path / "pairs", n_train=2, n_val=3, size=side)
    data = PairedImageDataModule(
        str(root), image_size=side, load_size=side, channels=1, flip=False, batch_size=1, num_workers=0
    )
    model = tiny_pix2pix()
    translations = TranslationGrid(every_n_steps=5, num_examples=3)
    quiet_trainer(tmp_path, max_steps=1, callbacks=[translations]).fit(model, datamodule=data)

    grid = read_png(tmp_path / "translations" / "last.png")
    step = side + 2
    assert grid.shape == (1, 3 * step + 2, 3 * step + 2)  # 3 examples; input | output | target
    inputs, targets = data.fixed_examples(3)
    expected = [inputs, model.translate(inputs), targets]
    for column, images in enumerate(expected):
        for row in range(3):
            top, left = 2 + row * step, 2 + column * step
            shown = grid[:, top : top + side, left : left + side].short()
            assert (shown - to_uint8(images[row]).short()).abs().max() <= 1, (row, column)
    # The targets are the inputs' own pairs (B = 255 - A in these files).
    assert (to_uint8(targets).short() + to_uint8(inputs).short() - 255).abs().max() <= 1
