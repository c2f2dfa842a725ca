"""What the image-to-image models share: running a generator for translation (eval mode, or the pix2pix test
protocol), and one lone generator as a translation model. The directions and their check are the data's
(:mod:`ganzoo.data.translation`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ganzoo.data.translation import check_direction
from ganzoo.errors import ConfigError
from ganzoo.nets.sync_batchnorm import local_statistics
from ganzoo.sampling import seeded_dropout


@contextmanager
def per_image_statistics(net: nn.Module) -> Iterator[None]:
    """Inside the block ``net`` runs in training mode, but its batch norms leave their running statistics alone.

    Batch norms then normalize by the statistics of the batch they see (this process's only) and dropout is
    active: the official pix2pix test script's mode (it never calls ``eval()``), without that script's side
    effect of moving the running statistics. The mode and the batch norms' settings are restored afterwards.
    """
    was_training = net.training
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    net.train()
    for m in norms:
        m.track_running_stats = False  # a training-mode forward then neither reads nor updates the buffers
    try:
        with local_statistics(net):
            yield
    finally:
        for m in norms:
            m.track_running_stats = True
        net.train(was_training)


@torch.no_grad()
def translate_with(
    net: nn.Module, images: torch.Tensor, device: torch.device, *, eval_mode: bool = True, seed: int | None = 0
) -> torch.Tensor:
    """``net`` on float ``images`` (N, C, H, W) in [-1, 1] (moved to ``device``): float32 (N, C', H, W) clamped to
    [-1, 1]. ``net``'s mode is restored afterwards.

    ``eval_mode`` True: ``net`` in eval mode (stored batch-norm statistics, no dropout), all images at once.
    False: the official pix2pix test protocol (its ``test.py`` without ``--eval``, and the paper's "we apply dropout
    at test time, and batch normalization using the statistics of the test batch"): one image at a time, as that
    script's batch of 1, each normalized by its own statistics, with dropout active; the masks come from ``seed``
    (the same translations at every call; None: from the global random state), and running statistics stay as
    they are (:func:`per_image_statistics`).
    """
    images = images.to(device)
    if not eval_mode:
        with per_image_statistics(net), seeded_dropout(images.device, seed):
            out = torch.cat([net(image[None]) for image in images]) if len(images) else net(images)
        return out.float().clamp_(-1.0, 1.0)
    was_training = net.training
    net.eval()
    try:
        return net(images).float().clamp_(-1.0, 1.0)
    finally:
        net.train(was_training)


class OneWayTranslator(nn.Module):
    """One generator on its own (an official CycleGAN ``latest_net_G_A.pth`` / ``horse2zebra.pth``, or a pix2pix
    ``latest_net_G.pth`` / ``facades_label2photo.pth``): an :class:`~ganzoo.sampling.ImageToImage` model that
    translates the one direction it was trained for.

    Args:
        generator: an image-to-image net with ``in_channels`` (:class:`~ganzoo.nets.cyclegan.ResnetGenerator`,
            :class:`~ganzoo.nets.unet.UnetGenerator`).
        direction: ``"AtoB"`` (CycleGAN's ``G_A``, pix2pix's default) or ``"BtoA"`` (``G_B``).
        source: where the generator came from, named in error messages.
        eval_mode: translate with the generator in eval mode (True) or by the pix2pix test protocol (False: see
            :func:`translate_with`).
    """

    def __init__(
        self, generator: nn.Module, direction: str = "AtoB", source: str = "this generator", eval_mode: bool = True
    ) -> None:
        super().__init__()
        self.generator = generator
        self.direction = check_direction(direction, "direction")
        self.source = source
        self.eval_mode = eval_mode

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def directions(self) -> tuple[str, ...]:
        """The one direction this generator translates."""
        return (self.direction,)

    def translate(self, images: torch.Tensor, direction: str | None = None, *, seed: int | None = 0) -> torch.Tensor:
        """Translate float images (N, C, H, W) in [-1, 1]; returns float32 (N, C', H, W) in [-1, 1] on the
        generator's device. ``direction`` must be the generator's own (None: that one); ``seed`` fixes the dropout
        masks of the pix2pix test protocol (``eval_mode`` False)."""
        net = self._checked(direction or self.direction)
        return translate_with(net, images, self.device, eval_mode=self.eval_mode, seed=seed)

    def source_channels(self, direction: str | None = None) -> int:
        """The image channels ``translate(images, direction)`` takes."""
        return self._checked(direction or self.direction).in_channels

    def size_multiple(self, direction: str | None = None) -> int:
        """Image sides ``translate(images, direction)`` takes must be multiples of this."""
        return getattr(self._checked(direction or self.direction), "size_multiple", 1)

    def _checked(self, direction: str) -> nn.Module:
        if check_direction(direction, "direction") != self.direction:
            other = "G_B" if self.direction == "AtoB" else "G_A"
            raise ConfigError(
                f"{self.source} holds one generator, which translates {self.direction} only: use "
                f"direction={self.direction}, or load the other generator's file (e.g. latest_net_{other}.pth) "
                f"for {direction}"
            )
        return self.generator
