"""Image transforms shared by every dataset.

All helpers take uint8 tensors shaped (..., C, H, W) with values in [0, 255] and return
uint8 of the same layout; only the final step of :class:`ImageTransform` moves to float
in [-1, 1] (through :func:`ganzoo.images.from_uint8`). Staying in uint8 until the end
keeps whole-dataset preprocessing small in memory and cheap to index.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ganzoo.errors import ConfigError
from ganzoo.images import from_uint8

# Upper bound on the float temporaries of one resize call; chunking keeps a 60k-image
# resize from allocating gigabytes at once.
_RESIZE_CHUNK = 4096


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert uint8 images (..., 1 or 3, H, W) to (..., channels, H, W).

    Grey -> RGB repeats the plane; RGB -> grey uses ITU-R 601 luminance
    (0.299 R + 0.587 G + 0.114 B), as PIL's ``convert("L")`` does.
    """
    have = x.shape[-3]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return F.grayscale_to_rgb(x)
    if have == 3 and channels == 1:
        return F.rgb_to_grayscale(x, num_output_channels=1)
    raise ConfigError(f"cannot convert {have}-channel images to {channels} channels: set channels to 1 or 3")


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 images (..., C, H, W) to (..., C, size, size), antialiased bilinear.

    Aspect ratio is not kept, which is what square datasets (MNIST, CIFAR) need.
    Large batches are processed in chunks along the first dimension.
    """
    if tuple(x.shape[-2:]) == (size, size):
        return x
    if x.dim() <= 3 or x.shape[0] <= _RESIZE_CHUNK:
        return F.resize(x, [size, size], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
    out = x.new_empty((*x.shape[:-2], size, size))
    for start in range(0, x.shape[0], _RESIZE_CHUNK):
        chunk = x[start : start + _RESIZE_CHUNK]
        out[start : start + _RESIZE_CHUNK] = F.resize(
            chunk, [size, size], interpolation=v2.InterpolationMode.BILINEAR, antialias=True
        )
    return out


def resize_short_side(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize one uint8 image (C, H, W) so that min(H, W) == size, keeping the aspect ratio."""
    if min(x.shape[-2:]) == size:
        return x
    return F.resize(x, [size], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the central (size, size) window of (..., C, H, W); H and W must be >= size."""
    return F.center_crop(x, [size, size])


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a uniformly random (size, size) window of (..., C, H, W); H and W must be >= size.

    Draws from ``generator``, or from the global torch RNG when it is None.
    """
    h, w = x.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (), generator=generator).item())
    left = int(torch.randint(0, w - size + 1, (), generator=generator).item())
    return x[..., top : top + size, left : left + size]


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror (..., C, H, W) left-right with probability 1/2 (``generator``, or the global RNG when None)."""
    if torch.rand((), generator=generator) < 0.5:
        return x.flip(-1)
    return x


@dataclass(frozen=True)
class ImageTransform:
    """Per-item pipeline: uint8 (C, H, W) -> float32 (channels, image_size, image_size) in [-1, 1].

    ``load_size=None`` stretches the image to a square (for square datasets, whose
    tensors are usually already at the final size, making this a no-op). Otherwise the
    short side is resized to ``load_size`` and an ``image_size`` square is cropped:
    at random when ``random_crop`` is set (training), else from the center.
    A plain class rather than a closure so that it pickles into DataLoader workers.
    """

    image_size: int
    channels: int
    load_size: int | None = None
    random_crop: bool = False
    flip: bool = False

    @property
    def is_random(self) -> bool:
        return self.random_crop or self.flip

    def deterministic(self) -> ImageTransform:
        """The same pipeline without augmentation: a center crop instead of a random one, no flip."""
        return dataclasses.replace(self, random_crop=False, flip=False)

    def __call__(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """``seed`` fixes this item's random crop and flip (see ganzoo.data.sampler); None uses the global RNG."""
        generator = torch.Generator().manual_seed(seed) if seed is not None and self.is_random else None
        x = to_channels(x, self.channels)
        if self.load_size is None:
            x = resize_square(x, self.image_size)
        else:
            x = resize_short_side(x, self.load_size)
            x = random_crop(x, self.image_size, generator) if self.random_crop else center_crop(x, self.image_size)
        if self.flip:
            x = random_hflip(x, generator)
        return from_uint8(x)


def build_transform(
    image_size: int, channels: int, *, train: bool, flip: bool = False, load_size: int | None = None
) -> ImageTransform:
    """The transform every ganzoo dataset uses.

    Augmentation (random crop when ``load_size`` is set, horizontal flip when ``flip``)
    only happens when ``train`` is true; evaluation transforms are deterministic.
    """
    return ImageTransform(
        image_size=image_size,
        channels=channels,
        load_size=load_size,
        random_crop=train and load_size is not None,
        flip=train and flip,
    )
