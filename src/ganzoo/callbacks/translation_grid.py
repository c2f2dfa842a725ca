"""Translation sheets of fixed val examples: a cycle for models that translate both ways (CycleGAN), input / output /
target for one-way models (pix2pix)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from ganzoo.callbacks.image_sheet import ImageSheetCallback
from ganzoo.images import image_grid, to_uint8
from ganzoo.sampling import ImageToImage

#: Columns of a model that translates both ways: each domain's images, their translations and back again.
COLUMNS = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")
#: Columns of a one-way model on paired data: the input, its translation and the target of the pair.
ONE_WAY_COLUMNS = ("input", "output", "target")


class TranslationGrid(ImageSheetCallback):
    """For :class:`~ganzoo.sampling.ImageToImage` models: every ``every_n_steps`` generator updates, at the start
    and at the end, write ``<dirpath>/step_XXXXXXX.png`` (and ``last.png``), one row per example:
    real_A | fake_B | rec_A | real_B | fake_A | rec_B for a model that translates both ways (CycleGAN), and
    input | output | target for a model that translates one way (pix2pix; on paired data, the target is the
    input's own pair).

    The examples are the first ``num_examples`` val images of each domain (``datamodule.fixed_examples``).
    The sheet goes to the loggers too; with W&B also as a table with one row per example and one image
    column per stage. Other models are left alone.
    """

    name = "translations"

    def __init__(self, every_n_steps: int = 500, num_examples: int = 4, dirpath: str | None = None) -> None:
        super().__init__(every_n_steps, dirpath)
        self.num_examples = num_examples
        self.examples: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        fixed = getattr(trainer.datamodule, "fixed_examples", None)
        if isinstance(pl_module, ImageToImage) and fixed is not None and self.examples is None:
            self.examples = fixed(self.num_examples)

    @staticmethod
    def columns(pl_module: ImageToImage) -> tuple[str, ...]:
        """The sheet's columns for ``pl_module``: :data:`COLUMNS` or :data:`ONE_WAY_COLUMNS`."""
        return COLUMNS if set(pl_module.directions) == {"AtoB", "BtoA"} else ONE_WAY_COLUMNS

    def stages(self, pl_module: ImageToImage) -> list[torch.Tensor]:
        """The image batches of the sheet, in :meth:`columns` order, each (n, C, H, W) in [-1, 1]."""
        assert self.examples is not None
        real_a, real_b = self.examples
        if self.columns(pl_module) == ONE_WAY_COLUMNS:
            # The DataModule's pairs already run in the model's direction: A is the input, B the target.
            output = pl_module.translate(real_a, pl_module.directions[0])
            return [real_a.to(output.device), output, real_b.to(output.device)]
        fake_b = pl_module.translate(real_a, "AtoB")
        fake_a = pl_module.translate(real_b, "BtoA")
        real_a, real_b = real_a.to(fake_b.device), real_b.to(fake_a.device)  # beside the translations
        return [
            real_a,
            fake_b,
            pl_module.translate(fake_b, "BtoA"),
            real_b,
            fake_a,
            pl_module.translate(fake_a, "AtoB"),
        ]

    def applies_to(self, pl_module: LightningModule) -> bool:
        return isinstance(pl_module, ImageToImage)

    def sheet(self, trainer: Trainer, pl_module: LightningModule) -> tuple[torch.Tensor, str] | None:
        if self.examples is None:
            return None
        stages, columns = self.stages(pl_module), self.columns(pl_module)
        self._log_table(trainer, stages, columns, trainer.global_step)
        rows = torch.stack(stages, dim=1).flatten(0, 1)  # example by example, the stages side by side
        return image_grid(rows, nrow=len(columns)), " | ".join(columns)

    @staticmethod
    def _log_table(trainer: Trainer, stages: list[torch.Tensor], columns: tuple[str, ...], step: int) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        import wandb

        arrays = [to_uint8(stage).permute(0, 2, 3, 1).squeeze(-1).cpu().numpy() for stage in stages]
        data = [[wandb.Image(column[i]) for column in arrays] for i in range(len(arrays[0]))]
        for logger in loggers:
            logger.log_table(key="translation_table", columns=list(columns), data=data, step=step)
