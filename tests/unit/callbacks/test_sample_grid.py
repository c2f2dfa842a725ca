"""SampleGrid in real tiny fits: which steps it writes, the grid's pixel size, the same latents at every step and
across a resume, and the images it sends to an image logger (TensorBoard)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset
from torchvision.io import decode_png

from ganzoo.callbacks import GANCheckpoint, SampleGrid
from ganzoo.loggers import TensorBoardLogger
from tests.builders import quiet_trainer, read_png, tiny_dcgan

# Checkpoints of manual-optimization modules hold the state after the step, as ganzoo intends.
pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


def random_images(n: int = 16, channels: int = 1, size: int = 16) -> DataLoader:
    """``n`` random images in [-1, 1] with label 0, batches of 4."""
    images = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return DataLoader(TensorDataset(images, torch.zeros(n, dtype=torch.int64)), batch_size=4)


def fit(
    root: Path, callbacks: list[Callback], steps: int = 3, ckpt_path: str | None = None, **settings: object
) -> L.Trainer:
    """Train ``tiny_dcgan`` (16 px, 1 channel, seed 0, lr 0.01 so that 3 steps change its samples visibly) on
    16 random images."""
    torch.manual_seed(0)
    trainer = quiet_trainer(root, max_steps=steps, callbacks=callbacks, **settings)
    trainer.fit(tiny_dcgan(lr=0.01), random_images(), ckpt_path=ckpt_path)
    return trainer


def written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_writes_at_start_every_n_steps_and_end_with_the_grid_size_of_num_samples(tmp_path: Path) -> None:
    grid = SampleGrid(every_n_steps=2, num_samples=4, seed=0)
    fit(tmp_path, [grid], steps=3)
    folder = tmp_path / "samples"  # the default: <default_root_dir>/samples
    assert written(folder) == ["last.png", "step_0000000.png", "step_0000002.png", "step_0000003.png"]
    assert grid.last_written == folder / "step_0000003.png"
    assert (folder / "last.png").read_bytes() == (folder / "step_0000003.png").read_bytes()
    # 4 grey 16 px samples in a square grid: 2 x 2 cells, 2 px of padding around each.
    assert read_png(folder / "step_0000000.png").shape == (1, 2 * 18 + 2, 2 * 18 + 2)
    # The grid is drawn from the model of its step: 3 steps at lr 0.01 change the samples.
    assert not torch.equal(read_png(folder / "step_0000000.png"), read_png(folder / "step_0000003.png"))


def test_every_n_steps_zero_writes_start_and_end_and_nrow_sets_the_columns(tmp_path: Path) -> None:
    grid = SampleGrid(every_n_steps=0, num_samples=6, nrow=3, dirpath=str(tmp_path / "elsewhere"))
    fit(tmp_path, [grid], steps=3)
    assert written(tmp_path / "elsewhere") == ["last.png", "step_0000000.png", "step_0000003.png"]
    assert not (tmp_path / "samples").exists()
    assert read_png(tmp_path / "elsewhere" / "last.png").shape == (1, 2 * 18 + 2, 3 * 18 + 2)  # 2 rows of 3


def test_the_seed_fixes_the_images(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("other", 4)):
        fit(tmp_path, [SampleGrid(every_n_steps=0, num_samples=4, seed=seed, dirpath=str(tmp_path / name))], steps=1)
    for step in ("step_0000000.png", "step_0000001.png"):
        same, twin, other = (read_png(tmp_path / name / step) for name in ("a", "b", "other"))
        assert torch.equal(same, twin)
        assert not torch.equal(same, other)


def test_a_resumed_run_draws_the_latents_of_the_checkpoint(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    saving = GANCheckpoint(dirpath=checkpoints, every_n_train_steps=0, save_top_k=0, save_last=True)
    first = SampleGrid(every_n_steps=0, num_samples=4, seed=0, dirpath=str(tmp_path / "first"))
    fit(tmp_path, [first, saving], steps=2, enable_checkpointing=True)
    checkpoint = str(checkpoints / "last.ckpt")
    # Another seed in the resumed run's config: the checkpoint's latents win (same number of samples), so the
    # step the run resumes at shows the first run's images of that step.
    kept = SampleGrid(every_n_steps=2, num_samples=4, seed=7, dirpath=str(tmp_path / "resumed"))
    fit(tmp_path, [kept], steps=4, ckpt_path=checkpoint)
    assert written(tmp_path / "resumed") == ["last.png", "step_0000002.png", "step_0000004.png"]
    assert torch.equal(read_png(tmp_path / "resumed" / "step_0000002.png"), read_png(tmp_path / "first" / "last.png"))

    # A different number of samples: the checkpoint's latents do not fit, the run draws its own 9.
    resized = SampleGrid(every_n_steps=0, num_samples=9, seed=0, dirpath=str(tmp_path / "resized"))
    fit(tmp_path, [resized], steps=3, ckpt_path=checkpoint)
    assert read_png(tmp_path / "resized" / "step_0000002.png").shape == (1, 3 * 18 + 2, 3 * 18 + 2)


def test_the_grid_goes_to_an_image_logger_at_its_steps(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tb", version="")
    fit(tmp_path, [SampleGrid(every_n_steps=2, num_samples=4)], steps=3, logger=logger)
    logger.finalize("success")
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={IMAGES: 0}).Reload()
    images = events.Images("samples")
    assert [image.step for image in images] == [0, 2, 3]
    assert {(image.width, image.height) for image in images} == {(38, 38)}
    # TensorBoard stores the grey grid as RGB: three equal planes.
    shown = decode_png(torch.frombuffer(bytearray(images[-1].encoded_image_string), dtype=torch.uint8))
    assert torch.equal(shown, read_png(tmp_path / "samples" / "last.png").expand(3, -1, -1))
