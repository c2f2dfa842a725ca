"""Datasets whose images all sit in memory as one uint8 tensor (MNIST-like, CIFAR), alone or as aligned pairs."""

from __future__ import annotations

import copy
import hashlib

import torch
from torch.utils.data import Dataset

from ganzoo.data.sampler import SampleKey, split_key
from ganzoo.data.transforms import build_transform, resize_square, to_channels

# Pre-resizing trades memory for speed; above this size (e.g. CIFAR at 256 px would be
# ~10 GB) images stay at native size and are resized per item instead.
MAX_PRESIZED_BYTES = 2 * 1024**3


class TensorImageDataset(Dataset):
    """Items are ``(image, label)``: float32 (channels, image_size, image_size) in [-1, 1], int64 scalar.

    ``images`` is uint8 (N, 1 or 3, H, W) at any square size; channel conversion and
    resizing happen once here, vectorised over the whole tensor, so ``__getitem__`` only
    indexes, optionally flips (``train and flip``) and converts to float.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        image_size: int,
        channels: int,
        *,
        train: bool,
        flip: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        presize = images.shape[0] * channels * image_size * image_size <= MAX_PRESIZED_BYTES
        # Resize the fewer planes: before grey -> RGB, after RGB -> grey.
        if presize and images.shape[1] <= channels:
            images = resize_square(images, image_size)
        images = to_channels(images, channels)
        if presize:
            images = resize_square(images, image_size)
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.transform = build_transform(image_size, channels, train=train, flip=flip)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = split_key(key)
        return self.transform(self.images[index], seed), self.labels[index]

    def without_augmentation(self) -> TensorImageDataset:
        """A view of the same images with the deterministic transform (for evaluation)."""
        view = copy.copy(self)
        view.transform = self.transform.deterministic()
        return view

    def fingerprint(self) -> str:
        """A digest of the images and labels as stored (after resizing), to detect changed data."""
        digest = hashlib.sha1(self.images.numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]


class TensorPairDataset(Dataset):
    """``(image_A, image_B)`` items of two aligned :class:`TensorImageDataset`: item i is (A[i], B[i]), float32
    (channels, image_size, image_size) in [-1, 1] each, labels dropped.

    One crop and flip is drawn per item from its seed and applied to both images (the transform's ``pair``), so
    the pair stays aligned. Both sets must hold as many images, of one shape, under the same transform.
    """

    def __init__(self, domain_a: TensorImageDataset, domain_b: TensorImageDataset) -> None:
        if domain_a.images.shape != domain_b.images.shape or domain_a.transform != domain_b.transform:
            raise ValueError(
                f"the domains of a pair set differ: {tuple(domain_a.images.shape)} {domain_a.transform} and "
                f"{tuple(domain_b.images.shape)} {domain_b.transform}"
            )
        self.domain_a = domain_a
        self.domain_b = domain_b

    def __len__(self) -> int:
        return len(self.domain_a)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = split_key(key)
        return self.domain_a.transform.pair(self.domain_a.images[index], self.domain_b.images[index], seed)

    def without_augmentation(self) -> TensorPairDataset:
        """The same pairs with the deterministic transform."""
        return TensorPairDataset(self.domain_a.without_augmentation(), self.domain_b.without_augmentation())

    def fingerprint(self) -> str:
        """A digest of both domains' images and labels."""
        both = f"{self.domain_a.fingerprint()}\0{self.domain_b.fingerprint()}"
        return hashlib.sha1(both.encode()).hexdigest()[:16]
