"""InterpolationSheet in real tiny fits: latent walks of a DCGAN, class walks of a class-conditional BigGAN (32 px,
3 classes), the sheet's size, endpoints fixed by the seed, the models each space acts on and bad settings."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback, LightningModule
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import InterpolationSheet
from ganzoo.errors import ConfigError
from ganzoo.models.biggan import BigGAN
from ganzoo.models.dcgan import DCGAN
from tests.builders import quiet_trainer, randomise, read_png, tiny_biggan, tiny_dcgan


def contrasted_dcgan() -> DCGAN:
    """``tiny_dcgan`` with larger random weights: its untrained samples differ visibly from latent to latent."""
    model = tiny_dcgan()
    randomise(model.generator, std=0.3)
    return model


def fit(root: Path, model: LightningModule, callbacks: list[Callback], steps: int = 1) -> L.Trainer:
    """Train ``model`` for ``steps`` iterations on 8 random grey images in [-1, 1] of its size, labels 0, 1, 2."""
    size = 32 if isinstance(model, BigGAN) else 16
    images = torch.rand(8, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(0)
    trainer = quiet_trainer(root, max_steps=steps, callbacks=callbacks)
    trainer.fit(model, DataLoader(TensorDataset(images, torch.arange(8) % 3), batch_size=2))
    return trainer


def cells(grid: torch.Tensor, size: int, rows: int, columns: int) -> list[list[torch.Tensor]]:
    """The images of a grid of ``size`` px images (2 px of padding), row by row; int16 for differences."""
    step = size + 2
    return [
        [
            grid[:, 2 + r * step : 2 + r * step + size, 2 + c * step : 2 + c * step + size].short()
            for c in range(columns)
        ]
        for r in range(rows)
    ]


def assert_same_image(a: torch.Tensor, b: torch.Tensor) -> None:
    # The same latent in batches of different sizes: the convolutions may round differently by one grey level.
    assert (a - b).abs().max() <= 1


def test_latent_walks_of_a_dcgan_share_their_endpoints_at_every_number_of_steps(tmp_path: Path) -> None:
    walks = {n: InterpolationSheet(every_n_steps=0, num_rows=2, num_steps=n, seed=5) for n in (2, 4)}
    for n, sheet in walks.items():
        fit(tmp_path / str(n), contrasted_dcgan(), [sheet], steps=1)
    folder = tmp_path / "4" / "interp_z"  # the default folder of space z
    assert sorted(p.name for p in folder.glob("*.png")) == ["last.png", "step_0000000.png", "step_0000001.png"]
    assert walks[4].last_written == folder / "step_0000001.png"
    four = read_png(folder / "step_0000000.png")
    assert four.shape == (1, 2 * 18 + 2, 4 * 18 + 2)  # num_rows rows of num_steps 16 px images
    short = cells(read_png(tmp_path / "2" / "interp_z" / "step_0000000.png"), 16, 2, 2)
    long = cells(four, 16, 2, 4)
    for row in range(2):
        # The walk starts and ends at the seed's two latents whatever the number of points between them ...
        assert_same_image(long[row][0], short[row][0])
        assert_same_image(long[row][3], short[row][1])
        # ... and moves between them: every point is another image.
        assert all((long[row][i] - long[row][i + 1]).abs().max() > 1 for i in range(3))
    assert (long[0][0] - long[1][0]).abs().max() > 1  # each row walks between its own latents


def test_class_walks_of_a_biggan_share_their_endpoints_and_move_between_them(tmp_path: Path) -> None:
    walks = {n: InterpolationSheet(every_n_steps=0, space="class", num_rows=2, num_steps=n, seed=1) for n in (2, 3)}
    for n, sheet in walks.items():
        fit(tmp_path / str(n), tiny_biggan(G_eval_mode=True), [sheet], steps=1)
    three = read_png(tmp_path / "3" / "interp_class" / "last.png")  # the default folder of space class
    assert three.shape == (1, 2 * 34 + 2, 3 * 34 + 2)
    short = cells(read_png(tmp_path / "2" / "interp_class" / "last.png"), 32, 2, 2)
    long = cells(three, 32, 2, 3)
    for row in range(2):
        assert_same_image(long[row][0], short[row][0])
        assert_same_image(long[row][2], short[row][1])
        assert (long[row][1] - long[row][0]).abs().max() > 1 and (long[row][1] - long[row][2]).abs().max() > 1


def test_the_seed_fixes_the_walks(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("other", 4)):
        sheet = InterpolationSheet(every_n_steps=0, num_rows=2, num_steps=3, seed=seed, dirpath=str(tmp_path / name))
        fit(tmp_path, contrasted_dcgan(), [sheet], steps=1)
    a, b, other = (read_png(tmp_path / name / "step_0000001.png") for name in ("a", "b", "other"))
    assert torch.equal(a, b) and not torch.equal(a, other)


def test_every_n_steps_sets_the_sheets_written(tmp_path: Path) -> None:
    fit(tmp_path, tiny_dcgan(), [InterpolationSheet(every_n_steps=2, num_rows=1, num_steps=2)], steps=3)
    assert sorted(p.name for p in (tmp_path / "interp_z").glob("step_*.png")) == [
        "step_0000000.png",
        "step_0000002.png",
        "step_0000003.png",
    ]


def test_class_walks_leave_models_without_classes_alone(tmp_path: Path) -> None:
    by_class = InterpolationSheet(every_n_steps=1, space="class", num_rows=1, num_steps=2)
    assert by_class.applies_to(tiny_biggan(num_classes=3)) and not by_class.applies_to(tiny_dcgan())
    assert InterpolationSheet(space="z").applies_to(tiny_dcgan())
    fit(tmp_path, tiny_dcgan(), [by_class], steps=1)
    assert by_class.last_written is None and not (tmp_path / "interp_class").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"space": "w"}, "space='w': use z or class"), ({"num_steps": 1}, "num_steps=1 must be at least 2")],
)
def test_bad_settings_are_config_errors(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InterpolationSheet(**settings)
