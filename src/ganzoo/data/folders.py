"""Any folder of image files, with or without one subfolder per class."""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganzoo.data.base import ImageDataModule, check_load_size
from ganzoo.data.image_file import IMAGE_EXTENSIONS, is_image_file, load_image
from ganzoo.data.sampler import SampleKey, split_key
from ganzoo.data.transforms import ImageTransform, build_transform
from ganzoo.errors import ConfigError, DataError


def list_images(directory: Path) -> list[Path]:
    """All image files below ``directory`` (recursive, symlinks followed, hidden entries skipped), sorted."""
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(p for p in (Path(dirpath) / f for f in filenames) if is_image_file(p))
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())


@dataclass(frozen=True)
class FolderIndex:
    """The images of a folder: ``files[i]`` has label ``labels[i]`` (-1 if unlabeled); class i is ``class_names[i]``."""

    files: list[Path]
    labels: list[int]
    class_names: list[str]


def missing_folder_error(root: Path) -> DataError:
    """The one line for an image folder that does not exist."""
    return DataError(
        f"image folder {root} does not exist: create it and put images in it, or set data.data_dir=<a folder of images>"
    )


def index_folder(root: Path, use_class_folders: bool = True) -> FolderIndex:
    """Find the images under ``root`` and decide whether its subfolders are classes.

    Subfolders are classes when ``use_class_folders``, ``root`` itself holds no images and
    at least one immediate subfolder holds some (at any depth); subfolders without images
    are ignored. Class ``i`` is the ``i``-th such subfolder in sorted order. Otherwise all
    images found recursively are unlabeled.
    """
    if not root.is_dir():
        raise missing_folder_error(root)
    entries = sorted(root.iterdir())
    top_level = [p for p in entries if p.is_file() and is_image_file(p)]
    per_class = {d.name: list_images(d) for d in entries if d.is_dir() and not d.name.startswith(".")}
    per_class = {name: files for name, files in per_class.items() if files}
    if use_class_folders and per_class and not top_level:
        names = sorted(per_class)
        files = [f for name in names for f in per_class[name]]
        labels = [i for i, name in enumerate(names) for _ in per_class[name]]
        return FolderIndex(files, labels, names)
    files = list_images(root)
    if not files:
        raise DataError(
            f"image folder {root} contains no images ({', '.join(IMAGE_EXTENSIONS)}): "
            "put images in it, or set data.data_dir=<a folder of images>"
        )
    return FolderIndex(files, [-1] * len(files), [])


class ImageFileDataset(Dataset):
    """Items are ``(image, label)``: float32 (channels, S, S) in [-1, 1] and an int64 scalar.

    Files are decoded lazily in ``__getitem__``, so a corrupt file only surfaces when it
    is drawn, as an :class:`~ganzoo.data.image_file.UnreadableImageError` naming it.
    """

    def __init__(self, files: list[Path], labels: list[int], channels: int, transform: ImageTransform) -> None:
        # A numpy string array instead of a list of Paths: workers forked from the main
        # process then share it without copy-on-access through Python refcounts.
        self.files = np.array([str(f) for f in files])
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = split_key(key)
        image = load_image(str(self.files[index]), self.channels, min_size=self.transform.load_size)
        return self.transform(image, seed), self.labels[index]

    def without_augmentation(self) -> ImageFileDataset:
        """A view of the same files with the deterministic transform (for evaluation)."""
        view = copy.copy(self)
        view.transform = self.transform.deterministic()
        return view

    def fingerprint(self) -> str:
        """A digest of the file list with each file's size and modification time, to detect changed data."""
        digest = hashlib.sha1(repr(self.transform).encode())
        for path, label in zip(self.files.tolist(), self.labels.tolist(), strict=True):
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
        return digest.hexdigest()[:16]


class ImageFolderDataModule(ImageDataModule):
    """A folder of images (.png .jpg .jpeg .bmp .webp .gif .tif .tiff, any case), searched recursively.

    If ``data_dir`` holds no images itself but its immediate subfolders do, each such
    subfolder is a class (sorted names -> labels 0..K-1, see ``class_names``); otherwise
    the images are unlabeled (label -1, ``num_classes == 0``).

    Images are converted to RGB or grey by ``channels``, resized so the short side is
    ``load_size`` (default ``image_size``), then cropped to ``image_size`` squares: a
    random crop plus the optional flip for training, a center crop for validation.

    Extra args:
        load_size: short side before cropping, >= image_size.
        val_fraction: share of the files held out for validation, chosen by ``seed``.
            With 0 (the default) nothing is held out: the val set is the train files
            without augmentation, useful for monitoring but not a held-out estimate.
        num_classes: expected class count, needed before setup for config interpolation.
            None: taken from the folder. 0: read the folder as unlabeled even if it has
            class subfolders. K > 0: setup fails unless exactly K class subfolders exist.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    dataset_name = "image folder"
    short_name = "folder"
    cpu_num_workers = 2

    def __init__(
        self,
        data_dir: str,
        image_size: int = 64,
        channels: int = 3,
        load_size: int | None = None,
        val_fraction: float = 0.0,
        num_classes: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir=data_dir, image_size=image_size, channels=channels, num_classes=num_classes, **kwargs)
        self.load_size = image_size if load_size is None else load_size
        check_load_size(self.load_size, image_size, remedy=" or remove it")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(
                f"data.val_fraction must be in [0, 1), got {val_fraction}: set e.g. data.val_fraction=0.05"
            )
        self.val_fraction = val_fraction
        self._requested_num_classes = num_classes
        self._index: FolderIndex | None = None

    def check_available(self) -> None:
        """The folder must exist (whether it holds images is checked when it is indexed)."""
        if not self.data_dir.is_dir():
            raise missing_folder_error(self.data_dir)

    def _folder_index(self) -> FolderIndex:
        if self._index is None:
            self._index = index_folder(self.data_dir, use_class_folders=self._requested_num_classes != 0)
        return self._index

    @property
    def num_classes(self) -> int:
        """Number of classes, 0 if unlabeled; scans the folder when not given to the constructor."""
        if self._requested_num_classes is not None:
            return self._requested_num_classes
        return len(self._folder_index().class_names)

    @property
    def class_names(self) -> list[str]:
        """Class subfolder names in label order (empty when unlabeled); scans the folder."""
        return self._folder_index().class_names

    def _check_classes(self, index: FolderIndex) -> None:
        expected, found = self._requested_num_classes, len(index.class_names)
        if expected is None or expected == found:
            return
        what = f"{found} class subfolders" if found else "no class subfolders"
        raise DataError(
            f"{self.data_dir} has {what} but data.num_classes={expected}: set data.num_classes={found} "
            "(0 reads the folder unlabeled)"
        )

    def _split(self, n: int) -> tuple[list[int], list[int]]:
        if self.val_fraction == 0.0:
            everything = list(range(n))
            return everything, everything
        n_val = max(1, round(n * self.val_fraction))
        if n_val >= n:
            raise DataError(
                f"{self.data_dir} has only {n} images, too few to hold out data.val_fraction={self.val_fraction}: "
                "add images or lower data.val_fraction"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        return sorted(order[n_val:]), sorted(order[:n_val])

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        index = self._folder_index()
        self._check_classes(index)
        train_idx, val_idx = self._split(len(index.files))
        sets = []
        for idx, train in ((train_idx, True), (val_idx, False)):
            transform = build_transform(
                self.image_size, self.channels, train=train, flip=self.flip, load_size=self.load_size
            )
            files = [index.files[i] for i in idx]
            labels = [index.labels[i] for i in idx]
            sets.append(ImageFileDataset(files, labels, self.channels, transform))
        return sets[0], sets[1]
