"""Sample grids of a fixed latent batch, written as PNG and sent to the loggers."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from ganzoo.callbacks.image_sheet import ImageSheetCallback
from ganzoo.images import image_grid


class SampleGrid(ImageSheetCallback):
    """Every ``every_n_steps`` generator updates, at the start and at the end of training, generate from
    the same ``num_samples`` latents and write ``<dirpath>/step_XXXXXXX.png`` plus ``last.png``.

    Models without latents (CycleGAN) are left alone. The latents are drawn once from ``seed`` and stored in
    the checkpoint, so a resumed run keeps drawing the same batch. Class-conditional models get labels ``0, 1, ..., K-1, 0, 1, ...``, one class
    per column when ``nrow`` equals the number of classes.

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

    def _labels(self, pl_module: LightningModule) -> torch.Tensor | None:
        if not getattr(pl_module, "num_classes", 0):
            return None
        return torch.arange(self.num_samples) % pl_module.num_classes

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not getattr(pl_module, "latent_dim", 0):
            return  # a translation model (CycleGAN): TranslationGrid shows it
        if self.latents is None:
            self.latents = pl_module.sample_latent(
                self.num_samples, generator=torch.Generator().manual_seed(self.seed)
            ).cpu()

    def applies_to(self, pl_module: LightningModule) -> bool:
        return bool(getattr(pl_module, "latent_dim", 0))

    def sheet(self, trainer: Trainer, pl_module: LightningModule) -> tuple[torch.Tensor, str] | None:
        if self.latents is None:
            return None
        images = pl_module.generate(z=self.latents, labels=self._labels(pl_module))
        return image_grid(images, nrow=self.nrow), f"step {trainer.global_step}"

    def state_dict(self) -> dict[str, Any]:
        return {"latents": self.latents}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        latents = state_dict.get("latents")
        # Keep the checkpoint's latents unless this run asks for a different number of samples.
        if latents is not None and latents.shape[0] == self.num_samples:
            self.latents = latents
