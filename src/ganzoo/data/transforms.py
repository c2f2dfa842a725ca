"""Image transforms shared by every dataset: one resize, crop and flip pipeline.

All helpers take uint8 tensors shaped (..., C, H, W) with values in [0, 255] and return
uint8 of the same layout; only the final step of :class:`ImageTransform` moves to float
in [-1, 1] (through :func:`ganzoo.images.from_uint8`). Staying in uint8 until the end
keeps whole-dataset preprocessing small in memory and cheap to index.

Random crops and flips are drawn from an item's augmentation seed (see :mod:`ganzoo.data.sampler`),
once per item, as :class:`CropParams`: both images of a pair can then get the same ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ganzoo.data.sampler import item_generator
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


def draw_crop(height: int, width: int, size: int, generator: torch.Generator | None) -> tuple[int, int]:
    """A uniformly random ``(top, left)`` of a (size, size) window in a (height, width) image (both >= size).

    Draws from ``generator``, or from the global torch RNG when it is None: top first, then left.
    """
    top = int(torch.randint(0, height - size + 1, (), generator=generator).item())
    left = int(torch.randint(0, width - size + 1, (), generator=generator).item())
    return top, left


def draw_flip(generator: torch.Generator | None) -> bool:
    """True with probability 1/2 (``generator``, or the global RNG when None)."""
    return bool(torch.rand((), generator=generator) < 0.5)


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a uniformly random (size, size) window of (..., C, H, W); H and W must be >= size.

    Draws from ``generator``, or from the global torch RNG when it is None.
    """
    top, left = draw_crop(x.shape[-2], x.shape[-1], size, generator)
    return x[..., top : top + size, left : left + size]


@dataclass(frozen=True)
class CropParams:
    """One item's random crop (top-left corner in the resized image) and flip: drawn once, applied to each of
    its images."""

    top: int = 0
    left: int = 0
    flip: bool = False


@dataclass(frozen=True)
class ImageTransform:
    """Per-item pipeline: uint8 (C, H, W) -> float32 (channels, image_size, image_size) in [-1, 1].

    Channels are converted, the image is resized (:meth:`resize`), an ``image_size`` square is cropped and,
    with ``flip``, mirrored with probability 1/2. ``load_size=None`` stretches the image to a square (for
    square datasets, whose tensors are usually already at the final size, making this a no-op). Otherwise
    the short side is resized to ``load_size`` and the square is cropped at random when ``random_crop`` is
    set (training), else from the center. :class:`ResizeCropTransform` resizes differently, the rest is shared.
    A plain class rather than a closure so that it pickles into DataLoader workers.
    """

    image_size: int
    channels: int
    load_size: int | None = None
    random_crop: bool = False
    flip: bool = False

    def __post_init__(self) -> None:
        if self.random_crop and self.load_size is None:
            raise ValueError("a random crop needs load_size, the size of the image it is cut from")

    @property
    def is_random(self) -> bool:
        return self.random_crop or self.flip

    def deterministic(self) -> ImageTransform:
        """The same pipeline without augmentation: a center crop instead of a random one, no flip."""
        return dataclasses.replace(self, random_crop=False, flip=False)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (C, H, W) -> uint8 (channels, h, w): the image the ``image_size`` square is cropped from."""
        x = to_channels(x, self.channels)
        if self.load_size is None:
            return resize_square(x, self.image_size)
        return resize_short_side(x, self.load_size)

    def draw(self, seed: int | None, height: int, width: int) -> CropParams:
        """This item's crop and flip for a resized image of (height, width): a function of ``seed`` (the global
        RNG when None); the crop position first, then the flip."""
        if not self.is_random:
            return CropParams()
        generator = item_generator(seed)
        top, left = draw_crop(height, width, self.image_size, generator) if self.random_crop else (0, 0)
        return CropParams(top, left, draw_flip(generator) if self.flip else False)

    def crop_and_flip(self, x: torch.Tensor, params: CropParams) -> torch.Tensor:
        """uint8 (channels, h, w) from :meth:`resize` -> float32 (channels, image_size, image_size) in [-1, 1]."""
        size = self.image_size
        if self.random_crop:
            x = x[..., params.top : params.top + size, params.left : params.left + size]
        elif tuple(x.shape[-2:]) != (size, size):
            x = center_crop(x, size)
        if params.flip:
            x = x.flip(-1)
        return from_uint8(x)

    def __call__(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """``seed`` fixes this item's random crop and flip (see ganzoo.data.sampler); None uses the global RNG."""
        x = self.resize(x)
        return self.crop_and_flip(x, self.draw(seed, x.shape[-2], x.shape[-1]))

    def pair(self, a: torch.Tensor, b: torch.Tensor, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two aligned images of one item with the same crop and flip (drawn from ``seed``).

        Both must have the same size once resized; a stretching :class:`ResizeCropTransform` guarantees that.
        """
        a, b = self.resize(a), self.resize(b)
        if a.shape[-2:] != b.shape[-2:]:
            raise ValueError(f"the images of a pair differ in size after resizing: {tuple(a.shape)}, {tuple(b.shape)}")
        params = self.draw(seed, a.shape[-2], a.shape[-1])
        return self.crop_and_flip(a, params), self.crop_and_flip(b, params)


@dataclass(frozen=True)
class ResizeCropTransform(ImageTransform):
    """The official CycleGAN/pix2pix "resize_and_crop" (junyanz/pytorch-CycleGAN-and-pix2pix,
    ``data/base_dataset.py``): :class:`ImageTransform` with a stretching resize.

    Training (``random_crop``): the image is stretched to ``load_size`` x ``load_size`` (aspect ratio not
    kept, as in the official ``transforms.Resize([load_size, load_size])``), a random ``image_size``
    square is cropped and, with ``flip``, mirrored with probability 1/2. Otherwise the image is stretched
    straight to ``image_size`` (the official test options set load_size = crop_size, so nothing is cropped).
    Resizing is antialiased bilinear (the official code uses PIL bicubic).
    """

    load_size: int

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (C, H, W) -> uint8 (channels, L, L), L = load_size with a random crop to come, else image_size."""
        x = to_channels(x, self.channels)
        return resize_square(x, self.load_size if self.random_crop else self.image_size)


def build_transform(
    image_size: int, channels: int, *, train: bool, flip: bool = False, load_size: int | None = None
) -> ImageTransform:
    """The transform of single-image datasets (folders, in-memory tensors).

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


def build_resize_crop_transform(
    image_size: int, channels: int, load_size: int, *, train: bool, flip: bool
) -> ResizeCropTransform:
    """The transform of translation datasets: for training a random crop (when load_size > image_size; an image
    stretched to image_size has nothing to crop) and, with ``flip``, a random mirror; a plain resize otherwise."""
    return ResizeCropTransform(
        image_size, channels, load_size, random_crop=train and load_size > image_size, flip=train and flip
    )
