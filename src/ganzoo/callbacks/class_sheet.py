"""Per-class sample sheets of a class-conditional generator: one row per class, one fixed latent per column."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer

from ganzoo.callbacks.image_sheet import ImageSheetCallback
from ganzoo.errors import ConfigError
from ganzoo.images import image_grid
from ganzoo.sampling import NoiseToImage, fixed_latents


class ClassSheet(ImageSheetCallback):
    """Row ``r`` shows class ``classes[r]`` generated from the same ``samples_per_class`` latents as every
    other row, so a column shows what one latent becomes in each class (BigGAN-PyTorch's sample sheets).

    Written to ``<run dir>/class_sheets`` and sent to the loggers on the schedule of
    :class:`~ganzoo.callbacks.image_sheet.ImageSheetCallback`. Models that are not class-conditional
    :class:`~ganzoo.sampling.NoiseToImage` models are left alone.

    Args:
        every_n_steps: interval in generator updates; 0 writes only at the start and the end.
        samples_per_class: columns (latents).
        classes: class ids of the rows; None shows classes ``0 .. min(K, max_classes) - 1``.
        max_classes: row limit when ``classes`` is None (ImageNet has 1000 classes).
        truncation: truncation threshold of the latents (None: untruncated).
        seed: seed of the latents, the same at every step.
        dirpath: output folder; default ``<trainer.default_root_dir>/class_sheets``.
    """

    name = "class_sheets"

    def __init__(
        self,
        every_n_steps: int = 500,
        samples_per_class: int = 8,
        classes: list[int] | None = None,
        max_classes: int = 10,
        truncation: float | None = None,
        seed: int = 0,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(every_n_steps, dirpath)
        self.samples_per_class = samples_per_class
        self.classes = None if classes is None else [int(c) for c in classes]
        self.max_classes = max_classes
        self.truncation = truncation
        self.seed = seed

    def rows(self, num_classes: int) -> list[int]:
        """The class of each row, checked against the model's ``num_classes``."""
        if self.classes is None:
            return list(range(min(num_classes, self.max_classes)))
        bad = [c for c in self.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(
                f"callbacks.class_sheet.classes has {bad}, outside 0..{num_classes - 1}: pick trained classes"
            )
        return self.classes

    def applies_to(self, pl_module: LightningModule) -> bool:
        return isinstance(pl_module, NoiseToImage) and pl_module.num_classes >= 2

    def sheet(self, trainer: Trainer, pl_module: LightningModule) -> tuple[torch.Tensor, str] | None:
        if not isinstance(pl_module, NoiseToImage) or pl_module.num_classes < 2:
            return None
        rows = self.rows(pl_module.num_classes)
        z = fixed_latents(self.samples_per_class, pl_module.latent_dim, self.seed, self.truncation)
        labels = torch.tensor(rows).repeat_interleave(self.samples_per_class)
        images = pl_module.generate(z=z.repeat(len(rows), 1), labels=labels)
        caption = f"step {trainer.global_step}: rows are classes {rows}"
        return image_grid(images, nrow=self.samples_per_class), caption
