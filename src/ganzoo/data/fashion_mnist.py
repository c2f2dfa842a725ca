"""Fashion-MNIST: 28x28 grey clothing images in 10 classes (60k train, 10k val)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganzoo.data.base import ImageDataModule
from ganzoo.data.idx import read_idx
from ganzoo.data.tensor_dataset import TensorImageDataset
from ganzoo.errors import DataError

#: Where the Debian package ``dataset-fashion-mnist`` installs the idx files.
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

#: Split -> (images file, labels file), without the optional ``.gz``.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

NUM_CLASSES = 10


def _find_file(directory: Path, name: str) -> Path | None:
    # Uncompressed first: torchvision leaves both, and the plain one skips a gunzip.
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_split_files(directories: list[Path]) -> dict[str, tuple[Path, Path]] | None:
    """The first directory holding all four idx files wins; returns split -> (images, labels) or None."""
    for directory in directories:
        found = {
            split: (_find_file(directory, images), _find_file(directory, labels))
            for split, (images, labels) in SPLIT_FILES.items()
        }
        if all(p is not None for pair in found.values() for p in pair):
            return found  # type: ignore[return-value]
    return None


def load_split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split: images uint8 (N, 1, H, W) in [0, 255], labels int64 (N,) in [0, 10)."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dim() != 3:
        raise DataError(f"{images_path} holds shape {tuple(images.shape)}, not (N, H, W) images: replace the file")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path} has {labels.shape[0]} labels for {images.shape[0]} images in {images_path}: "
            "replace both files with a matching pair"
        )
    if labels.numel() and int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"{labels_path} has label {int(labels.max())}, outside 0..9: replace the file")
    return images.unsqueeze(1), labels.to(torch.int64)


@dataclass(frozen=True)
class FashionMNISTFiles:
    """Where the Fashion-MNIST idx files (gzipped or not) are looked for and, if allowed, downloaded to.

    In order: ``<data_dir>/FashionMNIST/raw`` (torchvision's layout), ``<data_dir>/fashion-mnist`` and
    ``system_dir`` (the Debian package's directory); failing that, :meth:`download_if_missing` fetches them
    with torchvision into ``<data_dir>/FashionMNIST/raw`` when ``download``.
    """

    data_dir: Path
    system_dir: Path | None
    download: bool

    def search_dirs(self) -> list[Path]:
        """Directories searched for the idx files, in order of precedence."""
        dirs = [self.data_dir / "FashionMNIST" / "raw", self.data_dir / "fashion-mnist"]
        if self.system_dir is not None:
            dirs.append(self.system_dir)
        return dirs

    def missing_error(self) -> DataError:
        return DataError(
            f"Fashion-MNIST not found: put the idx files in {self.data_dir / 'FashionMNIST' / 'raw'}, "
            "or `apt-get install dataset-fashion-mnist`, "
            "or run once with network access so torchvision can download it"
        )

    def locate(self) -> dict[str, tuple[Path, Path]]:
        """Split -> (images file, labels file); a one-line DataError when they are nowhere to be found."""
        found = find_split_files(self.search_dirs())
        if found is None:
            raise self.missing_error()
        return found

    def check_available(self) -> None:
        """Missing files are an error now only when no download is allowed (``data.download=false``)."""
        if not self.download and find_split_files(self.search_dirs()) is None:
            raise self.missing_error()

    def download_if_missing(self) -> None:
        """Download with torchvision if the files are nowhere to be found, then check they are there."""
        if find_split_files(self.search_dirs()) is None and self.download:
            from torchvision.datasets import FashionMNIST

            # Fetches all four files whatever the split flag says.
            from ganzoo.data.download import (
                try_download,
            )  # imported late: `python -m ganzoo.data.download` runs it as __main__

            try_download(functools.partial(FashionMNIST, str(self.data_dir), download=True), "Fashion-MNIST")
        self.locate()


class FashionMNISTSource:
    """What every DataModule reading the Fashion-MNIST idx files shares: where they are, the check that they
    exist, and their download. Mixed in before the DataModule base, whose ``check_available`` and
    ``prepare_data`` it replaces; the class sets ``data_dir``, ``system_dir`` and ``download``."""

    data_dir: Path
    system_dir: Path | None
    download: bool

    @property
    def files(self) -> FashionMNISTFiles:
        """Where this module's idx files are found or downloaded to."""
        return FashionMNISTFiles(self.data_dir, self.system_dir, self.download)

    def check_available(self) -> None:
        """Missing files are an error now only when no download is allowed (``data.download=false``)."""
        self.files.check_available()

    def prepare_data(self) -> None:
        """Download with torchvision if the files are nowhere to be found (runs on one process per node)."""
        self.files.download_if_missing()


class FashionMNISTDataModule(FashionMNISTSource, ImageDataModule):
    """Fashion-MNIST, 10 classes; train = the 60k train files, val = the 10k t10k files.

    The idx files (gzipped or not) are looked for, in order, in
    ``<data_dir>/FashionMNIST/raw`` (torchvision's layout), ``<data_dir>/fashion-mnist`` and
    ``system_dir`` (the Debian package's directory); failing that, :meth:`prepare_data`
    downloads them with torchvision into ``<data_dir>/FashionMNIST/raw`` when ``download``
    (see :class:`FashionMNISTFiles`).
    Native images are 28x28 grey; they are resized to ``image_size`` and, with
    ``channels=3``, repeated to RGB, once for the whole set at setup.

    Extra args:
        system_dir: system-wide copy to fall back on; None skips it.
        download: allow the torchvision download in :meth:`prepare_data`.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    dataset_num_classes = NUM_CLASSES
    dataset_name = "Fashion-MNIST"
    short_name = "fmnist"

    def __init__(
        self,
        data_dir: str = "data",
        image_size: int = 32,
        channels: int = 1,
        system_dir: str | None = SYSTEM_DIR,
        download: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(data_dir=data_dir, image_size=image_size, channels=channels, **kwargs)
        self.system_dir = Path(system_dir) if system_dir else None
        self.download = download

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        files = self.files.locate()
        sets = []
        for split in ("train", "val"):
            images, labels = load_split(*files[split])
            train = split == "train"
            sets.append(TensorImageDataset(images, labels, self.image_size, self.channels, train=train, flip=self.flip))
        return sets[0], sets[1]


class FashionMNISTTranslationSource(FashionMNISTSource):
    """What the translation tasks made of Fashion-MNIST share (``data=fmnist_domains``, ``data=fmnist_edges``): the
    idx files (see :class:`FashionMNISTSource`) and the labelled data their evaluator classifier trains on."""

    image_size: int
    channels: int

    def evaluator_data(self) -> FashionMNISTDataModule:
        """All of Fashion-MNIST at this resolution: what the evaluator classifier trains on (10 classes), so
        translations are judged by the same classifier as every other Fashion-MNIST run."""
        return FashionMNISTDataModule(
            data_dir=str(self.data_dir), image_size=self.image_size, channels=self.channels,
            system_dir=str(self.system_dir) if self.system_dir else None, download=self.download,
        )  # fmt: skip
