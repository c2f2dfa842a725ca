"""CIFAR-10 and CIFAR-100: 32x32 RGB images (50k train, 10k val), in torchvision's on-disk layout."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from ganzoo.data.base import ImageDataModule
from ganzoo.data.tensor_dataset import TensorImageDataset
from ganzoo.errors import DataError


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # The official archives are Python 2 pickles of byte-keyed dicts. pickle is
            # only ever pointed at these dataset files, never at user-supplied paths.
            obj = pickle.load(f, encoding="bytes")
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}): check that it exists and is readable") from e
    except Exception as e:  # a damaged pickle can raise almost anything
        raise DataError(f"{path} is not a CIFAR batch file ({type(e).__name__}): extract the archive again") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch file (no dict inside): extract the archive again")
    return obj


def read_cifar_batch(path: str | Path, label_key: bytes, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one CIFAR python batch: images uint8 (N, 3, 32, 32) in [0, 255], labels int64 (N,).

    The file is a pickled dict with ``b"data"``: uint8 (N, 3072), each row the R, G and B
    planes of a 32x32 image, and ``label_key`` (``b"labels"`` or ``b"fine_labels"``): N ints.
    """
    path = Path(path)
    batch = _unpickle(path)
    if b"data" not in batch or label_key not in batch:
        raise DataError(f"{path} lacks the {label_key.decode()!r} or 'data' entry: extract the archive again")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise DataError(
            f"{path} holds data {data.dtype}{data.shape} and {labels.shape[0]} labels, "
            "expected uint8 (N, 3072) and N labels: extract the archive again"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path} has labels outside 0..{num_classes - 1}: extract the archive again")
    images = torch.from_numpy(data.copy()).reshape(-1, 3, 32, 32)
    return images, torch.from_numpy(labels)


def read_class_names(path: Path, key: bytes) -> list[str] | None:
    """Class names from the ``meta`` / ``batches.meta`` file, or None if it is absent."""
    if not path.is_file():
        return None
    names = _unpickle(path).get(key)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else None


class _CIFARDataModule(ImageDataModule):
    """Shared logic; subclasses fill in the layout of their archive.

    Reads ``<data_dir>/<folder>/`` as extracted from the official python archive (which is
    what torchvision downloads). The val set is the test batch. Images are 32x32 RGB;
    with another ``image_size`` or ``channels=1`` (luminance) the whole set is converted
    once at setup. ``download`` allows a torchvision download in :meth:`prepare_data`.
    ``class_names`` is filled from the meta file at setup (None without one).
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    cpu_num_workers = 2
    folder: ClassVar[str]
    archive: ClassVar[str]
    train_files: ClassVar[tuple[str, ...]]
    test_file: ClassVar[str]
    meta_file: ClassVar[str]
    label_key: ClassVar[bytes]
    names_key: ClassVar[bytes]

    def __init__(
        self,
        data_dir: str = "data",
        image_size: int = 32,
        channels: int = 3,
        download: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(data_dir=data_dir, image_size=image_size, channels=channels, **kwargs)
        self.download = download
        self.class_names: list[str] | None = None

    @property
    def root(self) -> Path:
        """The extracted archive folder."""
        return self.data_dir / self.folder

    def _missing(self) -> list[str]:
        return [name for name in (*self.train_files, self.test_file) if not (self.root / name).is_file()]

    def _check_present(self) -> None:
        missing = self._missing()
        if missing:
            raise DataError(
                f"{self.dataset_name} not found ({self.root / missing[0]} is missing): "
                f"extract {self.archive} into {self.data_dir}, "
                "or run once with network access so torchvision can download it"
            )

    def _torchvision_dataset(self) -> type:
        raise NotImplementedError

    def check_available(self) -> None:
        """Missing files are an error now only when no download is allowed (``data.download=false``)."""
        if not self.download:
            self._check_present()

    def prepare_data(self) -> None:
        """Download with torchvision if the extracted folder is incomplete (runs on one process per node)."""
        if self._missing() and self.download:
            fetch = functools.partial(self._torchvision_dataset(), str(self.data_dir), download=True)
            from ganzoo.data.download import (
                try_download,
            )  # imported late: `python -m ganzoo.data.download` runs it as __main__

            try_download(fetch, self.dataset_name)
        self._check_present()

    def _read(self, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_cifar_batch(self.root / n, self.label_key, self.num_classes) for n in names]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        self._check_present()
        self.class_names = read_class_names(self.root / self.meta_file, self.names_key)
        sets = []
        for names, train in ((self.train_files, True), ((self.test_file,), False)):
            images, labels = self._read(names)
            sets.append(TensorImageDataset(images, labels, self.image_size, self.channels, train=train, flip=self.flip))
        return sets[0], sets[1]


class CIFAR10DataModule(_CIFARDataModule):
    """CIFAR-10: 10 classes, files in ``<data_dir>/cifar-10-batches-py/``."""

    dataset_num_classes = 10
    dataset_name = "CIFAR-10"
    short_name = "cifar10"
    folder = "cifar-10-batches-py"
    archive = "cifar-10-python.tar.gz"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_file = "test_batch"
    meta_file = "batches.meta"
    label_key = b"labels"
    names_key = b"label_names"

    def _torchvision_dataset(self) -> type:
        from torchvision.datasets import CIFAR10

        return CIFAR10


class CIFAR100DataModule(_CIFARDataModule):
    """CIFAR-100 with its 100 fine labels, files in ``<data_dir>/cifar-100-python/``."""

    dataset_num_classes = 100
    dataset_name = "CIFAR-100"
    short_name = "cifar100"
    folder = "cifar-100-python"
    archive = "cifar-100-python.tar.gz"
    train_files = ("train",)
    test_file = "test"
    meta_file = "meta"
    label_key = b"fine_labels"
    names_key = b"fine_label_names"

    def _torchvision_dataset(self) -> type:
        from torchvision.datasets import CIFAR100

        return CIFAR100
