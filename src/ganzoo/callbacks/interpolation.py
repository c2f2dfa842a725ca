"""Interpolation sheets: walks between two latents, or between two classes, of a generator."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer

from ganzoo.callbacks.image_sheet import ImageSheetCallback
from ganzoo.errors import ConfigError
from ganzoo.images import image_grid
from ganzoo.sampling import NoiseToImage, draw_latents, seeded


def interpolate(start: torch.Tensor, end: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Linear walk from ``start`` (R, D) to ``end`` (R, D) in ``num_steps`` points, both ends included:
    (R * num_steps, D), row ``r``'s points contiguous."""
    weights = torch.linspace(0.0, 1.0, num_steps, dtype=start.dtype).view(1, num_steps, 1)
    return torch.lerp(start.unsqueeze(1), end.unsqueeze(1), weights).reshape(-1, start.shape[1])


class InterpolationSheet(ImageSheetCallback):
    """Each row walks linearly in ``num_steps`` points from one endpoint to another (BigGAN-PyTorch's
    ``interp_sheet``):

    - ``space="z"``: between two latents, the class held fixed (the row's class);
    - ``space="class"``: between the class embeddings of two classes, the latent held fixed. The model gets
      class mixtures (N, num_classes), which a linear class embedding turns into the interpolated embedding.

    Endpoints come from ``seed``, so every step shows the same walks. Written to ``<run dir>/interp_z`` or
    ``interp_class`` and sent to the loggers. A ``space="class"`` sheet needs a class-conditional model; a
    ``space="z"`` sheet works for any :class:`~ganzoo.sampling.NoiseToImage` model.

    Args:
        every_n_steps: interval in generator updates; 0 writes only at the start and the end.
        space: ``z`` or ``class``.
        num_rows: walks per sheet.
        num_steps: images per walk, endpoints included.
        truncation: truncation threshold of the latents (None: untruncated).
        seed: seed of the endpoints.
        dirpath: output folder; default ``<trainer.default_root_dir>/interp_<space>``.
    """

    def __init__(
        self,
        every_n_steps: int = 500,
        space: str = "z",
        num_rows: int = 4,
        num_steps: int = 8,
        truncation: float | None = None,
        seed: int = 0,
        dirpath: str | None = None,
    ) -> None:
        if space not in ("z", "class"):
            raise ConfigError(f"InterpolationSheet space={space!r}: use z or class")
        if num_steps < 2:
            raise ConfigError(f"InterpolationSheet num_steps={num_steps} must be at least 2 (the two endpoints)")
        super().__init__(every_n_steps, dirpath)
        self.name = f"interp_{space}"
        self.space = space
        self.num_rows = num_rows
        self.num_steps = num_steps
        self.truncation = truncation
        self.seed = seed

    def applies_to(self, pl_module: LightningModule) -> bool:
        return isinstance(pl_module, NoiseToImage) and (self.space != "class" or pl_module.num_classes >= 2)

    def sheet(self, trainer: Trainer, pl_module: LightningModule) -> tuple[torch.Tensor, str] | None:
        if not self.applies_to(pl_module):
            return None
        num_classes = pl_module.num_classes
        # One stream for the endpoints, latents first and then classes, so every step shows the same walks.
        noise = seeded(self.seed)
        z = draw_latents(2 * self.num_rows, pl_module.latent_dim, noise, self.truncation)
        classes = torch.randint(max(num_classes, 1), (2, self.num_rows), generator=noise)
        if self.space == "z":
            latents = interpolate(z[: self.num_rows], z[self.num_rows :], self.num_steps)
            labels = classes[0].repeat_interleave(self.num_steps) if num_classes else None
            caption = f"step {trainer.global_step}: latent walks, classes {classes[0].tolist()}"
        else:
            latents = z[: self.num_rows].repeat_interleave(self.num_steps, dim=0)
            one_hot = torch.nn.functional.one_hot(classes, num_classes).float()
            labels = interpolate(one_hot[0], one_hot[1], self.num_steps)
            walks = list(zip(classes[0].tolist(), classes[1].tolist(), strict=True))
            caption = f"step {trainer.global_step}: class walks {walks}"
        images = pl_module.generate(z=latents, labels=labels)
        return image_grid(images, nrow=self.num_steps), caption
