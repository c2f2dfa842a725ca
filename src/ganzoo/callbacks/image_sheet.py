"""The schedule and file handling every image-sheet callback shares (sample grids, translation sheets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchvision.io import write_png

from ganzoo.loggers import log_images


class ImageSheetCallback(Callback):
    """Writes a sheet at the start of training, every ``every_n_steps`` generator updates and at the end:
    ``<dirpath>/step_XXXXXXX.png`` plus ``last.png`` (rank zero only, once per step), also sent to the loggers.

    Subclasses implement :meth:`sheet`, returning the uint8 image (C, H, W) for the current step, or None when
    the model is not theirs to show.
    """

    #: Default folder under the run directory, and the logger key.
    name = "samples"

    def __init__(self, every_n_steps: int = 500, dirpath: str | None = None) -> None:
        self.every_n_steps = every_n_steps
        self.dirpath = dirpath
        self._last_written_step = -1
        #: Path of the newest sheet this process wrote, None before the first.
        self.last_written: Path | None = None

    def sheet(self, trainer: Trainer, pl_module: LightningModule) -> tuple[torch.Tensor, str] | None:
        """(uint8 image (C, H, W), caption) for the current step, or None to write nothing."""
        raise NotImplementedError

    def applies_to(self, pl_module: LightningModule) -> bool:
        """Whether this sheet shows anything of ``pl_module`` (a sample grid of a translation model does not).
        ``ganzoo.train`` leaves the callbacks that do not apply out of the trainer: each callback costs every
        iteration a few calls, whether it acts or not."""
        return True

    def write(self, trainer: Trainer, pl_module: LightningModule) -> Path | None:
        """Write the sheet of the current step and return its path (None when nothing was written)."""
        step = trainer.global_step
        if step == self._last_written_step or not trainer.is_global_zero:
            return None
        made = self.sheet(trainer, pl_module)
        if made is None:
            return None
        self._last_written_step = step
        grid, caption = made
        folder = Path(self.dirpath or Path(trainer.default_root_dir) / self.name)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{step:07d}.png"
        write_png(grid, str(path))
        write_png(grid, str(folder / "last.png"))
        log_images(trainer, self.name, [grid], step=step, captions=[caption])
        self.last_written = path
        return path

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self.write(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write(trainer, pl_module)
