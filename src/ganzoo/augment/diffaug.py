"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): colour,
translation and cutout, drawn independently for every image and applied to every discriminator input."""

from __future__ import annotations

import torch

from ganzoo.augment.base import Augmentation, grouped
from ganzoo.errors import ConfigError

#: The paper's ops, in the order they are applied.
POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"color,translation,cutout"`` (or a list) as the ops to apply, in :data:`POLICIES` order; a ConfigError
    names an unknown one."""
    names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else [str(p).strip() for p in policy]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise ConfigError(
            f"model.augment_options.policy={policy!r} has unknown ops {unknown or '[]'}: choose from {', '.join(POLICIES)}, "
            "e.g. model.augment_options.policy=color,translation,cutout"
        )
    return tuple(name for name in POLICIES if name in names)


class DiffAugment(Augmentation):
    """The paper's three ops, each on every image with its own random draw (differentiable in the images).

    - ``color``: brightness + U(-0.5, 0.5); saturation x U(0, 2) around the per-pixel channel mean; contrast
      x U(0.5, 1.5) around the image mean.
    - ``translation``: an integer shift of up to ``translation_ratio`` of the side along each axis, the
      uncovered border filled with zeros.
    - ``cutout``: a square of ``cutout_ratio`` of the side, centred anywhere in the image, set to zero.

    Args:
        policy: comma-separated ops (``"color,translation,cutout"``, the paper's choice for small data), or a list.
        translation_ratio, cutout_ratio: the paper's 1/8 and 1/2.
    """

    def __init__(
        self,
        policy: str | list[str] = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        self.policy = parse_policy(policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def forward(self, images: torch.Tensor, image_channels: int | None = None) -> torch.Tensor:
        if "color" in self.policy:
            images = self.color(images, image_channels)
        if "translation" in self.policy:
            images = self.translation(images)
        if "cutout" in self.policy:
            images = self.cutout(images)
        return images

    def color(self, images: torch.Tensor, image_channels: int | None = None) -> torch.Tensor:
        """Brightness, saturation and contrast, one factor each per item (shared by the images of a stack)."""
        n, device = images.shape[0], images.device
        x = grouped(images, image_channels)
        per_item = (n, 1, 1, 1, 1)
        x = x + (self.uniform(n, device) - 0.5).view(per_item)
        # Saturation acts between the channels of one pixel, contrast on the whole image.
        mean = x.mean(dim=2, keepdim=True)
        x = (x - mean) * (2 * self.uniform(n, device)).view(per_item) + mean
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        x = (x - mean) * (self.uniform(n, device) + 0.5).view(per_item) + mean
        return x.reshape(images.shape)

    def translation(self, images: torch.Tensor) -> torch.Tensor:
        """Shift each item by whole pixels, at most ``translation_ratio`` of the side along each axis."""
        n, _, height, width = images.shape
        device = images.device
        max_y, max_x = int(height * self.translation_ratio + 0.5), int(width * self.translation_ratio + 0.5)
        shift_y = self.integers(-max_y, max_y + 1, n, device)
        shift_x = self.integers(-max_x, max_x + 1, n, device)
        # Output pixel (y, x) reads input (y + shift_y, x + shift_x); a one-pixel zero frame around the input
        # (index 0 and side + 1) stands for everything outside it.
        rows = (torch.arange(height, device=device).view(1, height) + shift_y.view(n, 1) + 1).clamp(0, height + 1)
        cols = (torch.arange(width, device=device).view(1, width) + shift_x.view(n, 1) + 1).clamp(0, width + 1)
        framed = torch.nn.functional.pad(images, (1, 1, 1, 1))
        items = torch.arange(n, device=device).view(n, 1, 1)
        # Index (item, row, col) on the NHWC view, giving (N, H, W, C).
        shifted = framed.permute(0, 2, 3, 1)[items, rows.view(n, height, 1), cols.view(n, 1, width)]
        return shifted.permute(0, 3, 1, 2)

    def cutout(self, images: torch.Tensor) -> torch.Tensor:
        """Zero a square of ``cutout_ratio`` of the side in each item, centred at a uniform pixel (it may be clipped
        by the border)."""
        n, _, height, width = images.shape
        device = images.device
        size_y, size_x = int(height * self.cutout_ratio + 0.5), int(width * self.cutout_ratio + 0.5)
        # Top-left corners such that the square's centre covers the image (as the reference's offsets do).
        top = self.integers(0, height + (1 - size_y % 2), n, device) - size_y // 2
        left = self.integers(0, width + (1 - size_x % 2), n, device) - size_x // 2
        rows = torch.arange(height, device=device).view(1, height) - top.view(n, 1)
        cols = torch.arange(width, device=device).view(1, width) - left.view(n, 1)
        inside_rows = (rows >= 0) & (rows < size_y)
        inside_cols = (cols >= 0) & (cols < size_x)
        keep = ~(inside_rows.view(n, 1, height, 1) & inside_cols.view(n, 1, 1, width))
        return images * keep.to(images.dtype)
