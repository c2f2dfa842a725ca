"""Lightning DataModules yielding ``(image, label)`` batches: float32 (B, C, S, S) in [-1, 1], int64 (B,)."""

from ganzoo.data.base import ImageDataModule
from ganzoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from ganzoo.data.fashion_mnist import FashionMNISTDataModule
from ganzoo.data.folders import ImageFolderDataModule
from ganzoo.data.image_file import IMAGE_EXTENSIONS, UnreadableImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "UnreadableImageError",
]
