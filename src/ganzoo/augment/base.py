"""What every differentiable augmentation of a discriminator's inputs shares: per-sample random draws from a
reseedable stream, and images that are stacks of several images (a conditional discriminator's pairs)."""

from __future__ import annotations

import torch
from torch import nn


class Augmentation(nn.Module):
    """Base class of the augmentations a GAN applies to every image its discriminator sees (real and generated, in
    the D step and in the G step), so that D cannot overfit a small dataset while G still learns the
    un-augmented distribution (every op is differentiable, so G's gradients flow through it).

    ``forward(images, image_channels=None)`` takes float (N, C, H, W) images in [-1, 1] (the results may leave
    that range, as in the references) and returns the same shape. ``image_channels``: the channels of one image
    when each item stacks several along C (pix2pix's discriminator sees input and output as 2 x channels); every
    image of an item then gets the same transform, so a pair stays a pair.

    Random draws come from :meth:`reseed`'s stream on the images' device: the model reseeds it every iteration
    from (run seed, iteration, process), so a resumed run augments as the uninterrupted one did, and nothing is
    drawn from the global random state. Without a reseed the draws come from the global random state.

    Subclasses whose strength adapts to training (ADA) override :meth:`observe_real`, :meth:`end_iteration`,
    :meth:`logged_values`, :meth:`extra_state` and :meth:`load_extra_state`; the defaults do nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._generator: torch.Generator | None = None

    def reseed(self, seed: int, device: torch.device) -> None:
        """Draw from a stream seeded with ``seed`` on ``device`` from now on (host work only: no device sync)."""
        if self._generator is None or self._generator.device != torch.device(device):
            self._generator = torch.Generator(device=device)
        self._generator.manual_seed(seed)

    def _stream(self, device: torch.device) -> torch.Generator | None:
        generator = self._generator
        return generator if generator is not None and generator.device == device else None

    def uniform(self, n: int, device: torch.device) -> torch.Tensor:
        """(n,) float32 in [0, 1) from the stream."""
        return torch.rand(n, device=device, generator=self._stream(device))

    def normal(self, n: int, device: torch.device) -> torch.Tensor:
        """(n,) float32 ~ N(0, 1) from the stream."""
        return torch.randn(n, device=device, generator=self._stream(device))

    def integers(self, low: int, high: int, n: int, device: torch.device) -> torch.Tensor:
        """(n,) int64 uniform in [low, high) from the stream."""
        return torch.randint(low, high, (n,), device=device, generator=self._stream(device))

    # ----------------------------------------------------------------------- adaptive strength (ADA)
    def observe_real(self, logits: torch.Tensor) -> None:
        """Record D's outputs on (augmented) real images of this iteration: any shape (N, ...)."""

    def end_iteration(self, iteration: int, real_images: int) -> None:
        """Called once per iteration, after the updates: ``iteration`` is the number of iterations done, and
        ``real_images`` the real images the iteration took over all processes."""

    def logged_values(self) -> dict[str, torch.Tensor]:
        """Values to log with the training losses (``train/ada_p``, ...), as 0-dim tensors on the device."""
        return {}

    def extra_state(self) -> dict[str, torch.Tensor]:
        """State that is not in the module's state dict and that resuming needs (collective under DDP: every
        process calls it when a checkpoint is saved)."""
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor], rank: int) -> None:
        """Restore :meth:`extra_state` on process ``rank``."""


def grouped(images: torch.Tensor, image_channels: int | None) -> torch.Tensor:
    """(N, G * c, H, W) as (N, G, c, H, W): the G images of each item, ``c = image_channels`` (None: one image)."""
    n, channels, height, width = images.shape
    c = channels if image_channels is None else image_channels
    if channels % c:
        raise ValueError(f"{channels} channels do not split into images of {c} channels")
    return images.reshape(n, channels // c, c, height, width)
