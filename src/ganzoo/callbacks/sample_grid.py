"""Sample grids of a fixed latent batch, written as PNG and sent to the loggers."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from ganzoo.callbacks.image_sheet import ImageSheetCallback
from ganzoo.images import image_grid
from ganzoo.sampling import NoiseToImage, cycled_classes, fixed_latents


class SampleGrid(ImageSheetCallback):
    """Every ``every_n_steps`` generator updates, at the start and at the end of training, generate from
    the same ``num_samples`` latents and write ``<dirpath>/step_XXXXXXX.png`` plus ``last.png``.

    Models that are not :class:`~ganzoo.sampling.NoiseToImage` (CycleGAN) are left alone. The latents are drawn
    once from ``seed`` and stored in the checkpoint, so a resumed run keeps drawing the same batch.
    Class-conditional models get labels ``0, 1, ..., K-1, 0, 1, ...``, one class per column when ``nrow`` equals
    the number of classes.

    Args:
        every_n_steps: interval in generator updates (``trainer.global_step``); 0 writes only start and end.
        num_samples: images per grid.
        seed: seed of the fixed latents.
        dirpath: output folder; default ``<trainer.default_root_dir>/samples``.
        nrow: images per grid row; default a square grid.
    """

    name = "samples"

    def __init__(
        self,
        every_n_steps: int = 500,
        num_samples: int = 64,
        seed: int = 0,
        dirpath: str | None = None,
        nrow: int | None = None,
    ) -> None:
        super().__init__(every_n_steps, dirpath)
        self.num_samples = num_samples
        self.seed = seed
        self.nrow = nrow
        self.latents: torch.Tensor | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not isinstance(pl_module, NoiseToImage):
            return  # a translation model (CycleGAN): TranslationGrid shows it
        if self.latents is None:
            self.latents = fixed_latents(self.num_samples, pl_module.latent_dim, self.seed)

    def applies_to(self, pl_module: LightningModule) -> bool:
        return isinstance(pl_module, NoiseToImage)

    def sheet(self, trainer: Trainer, pl_module: LightningModule) -> tuple[torch.Tensor, str] | None:
        if self.latents is None or not isinstance(pl_module, NoiseToImage):
            return None
        labels = cycled_classes(len(self.latents), pl_module.num_classes)
        images = pl_module.generate(z=self.latents, labels=labels)
        return image_grid(images, nrow=self.nrow), f"step {trainer.global_step}"

    def state_dict(self) -> dict[str, Any]:
        return {"latents": self.latents}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        latents = state_dict.get("latents")
        # Keep the checkpoint's latents unless this run asks for a different number of samples.
        if latents is not None and latents.shape[0] == self.num_samples:
            self.latents = latents
