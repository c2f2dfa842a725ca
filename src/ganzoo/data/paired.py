"""Paired (aligned) image-to-image translation data, as pix2pix uses it.

Follows the official ``data/aligned_dataset.py`` of junyanz/pytorch-CycleGAN-and-pix2pix: each train
item is an (A, B) pair that gets the SAME random crop and flip, drawn once per item.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganzoo.data.base import check_load_size
from ganzoo.data.download import DATASETS
from ganzoo.data.folders import list_images
from ganzoo.data.image_file import load_image
from ganzoo.data.sampler import SampleKey, split_key
from ganzoo.data.transforms import ResizeCropTransform, build_resize_crop_transform
from ganzoo.data.translation import DOMAINS, SPLITS, DomainSets, TranslationDataModule, check_direction
from ganzoo.errors import DataError

#: Pairs shown when file names do not match.
_SHOWN = 3


class PairedDataset(Dataset):
    """``(image_A, image_B)`` items of aligned pairs, float32 (channels, S, S) in [-1, 1] each.

    ``pairs[i]`` is ``(file, None)`` for an image holding A (left half) and B (right half) side by
    side, as in the official aligned layout, or ``(file_A, file_B)``. Both images of an item get the
    crop and flip drawn from the item's seed. ``swap`` returns ``(B, A)`` (direction BtoA).
    """

    def __init__(
        self, pairs: list[tuple[Path, Path | None]], channels: int, transform: ResizeCropTransform, *, swap: bool
    ) -> None:
        self.files_a = [str(a) for a, _ in pairs]
        self.files_b = [str(b) if b is not None else "" for _, b in pairs]
        self.channels = channels
        self.transform = transform
        self.swap = swap

    def __len__(self) -> int:
        return len(self.files_a)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.files_b[index]:
            ab = load_image(self.files_a[index], self.channels)
            half = ab.shape[-1] // 2  # the official split: A = [0, w/2), B = [w/2, w)
            a, b = ab[..., :half], ab[..., half:]
        else:
            size = self.transform.load_size
            a = load_image(self.files_a[index], self.channels, min_size=size)
            b = load_image(self.files_b[index], self.channels, min_size=size)
        return (b, a) if self.swap else (a, b)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = split_key(key)
        a, b = self._load(index)
        return self.transform.pair(a, b, seed)

    def without_augmentation(self) -> PairedDataset:
        """The same pairs with the deterministic transform (resize only)."""
        view = copy.copy(self)
        view.transform = self.transform.deterministic()
        return view

    def fingerprint(self) -> str:
        """A digest of the files (sizes, modification times), the transform and the direction."""
        digest = hashlib.sha1(f"{self.transform!r} swap={self.swap}".encode())
        for a, b in zip(self.files_a, self.files_b, strict=True):
            for path in (a, b) if b else (a,):
                stat = os.stat(path)
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


class PairedDomain(Dataset):
    """One side of a :class:`PairedDataset` as ``(image, -1)`` items (for real-image statistics)."""

    def __init__(self, pairs: PairedDataset, domain: str) -> None:
        self.pairs = pairs
        self.domain = domain

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pairs[key][DOMAINS.index(self.domain)], torch.tensor(-1, dtype=torch.int64)

    def without_augmentation(self) -> PairedDomain:
        return PairedDomain(self.pairs.without_augmentation(), self.domain)

    def fingerprint(self) -> str:
        return f"{self.pairs.fingerprint()}{self.domain}"


def _key(path: Path, root: Path) -> str:
    """What pairs a file of A with one of B: its path below the split folder without the suffix."""
    return path.relative_to(root).with_suffix("").as_posix()


def match_pairs(dir_a: Path, dir_b: Path) -> list[tuple[Path, Path | None]]:
    """Pair the images of ``dir_a`` and ``dir_b`` by file name (suffix ignored); a DataError lists mismatches."""
    files_a = {_key(p, dir_a): p for p in list_images(dir_a)}
    files_b = {_key(p, dir_b): p for p in list_images(dir_b)}
    only_a = sorted(set(files_a) - set(files_b))
    only_b = sorted(set(files_b) - set(files_a))
    if only_a or only_b:
        parts = []
        for only, here, there in ((only_a, dir_a, dir_b), (only_b, dir_b, dir_a)):
            if only:
                shown = ", ".join(only[:_SHOWN]) + (", ..." if len(only) > _SHOWN else "")
                parts.append(f"{len(only)} in {here} have no match in {there} ({shown})")
        raise DataError(f"unmatched pairs: {'; '.join(parts)}: give each A image and its B image the same file name")
    if not files_a:
        raise DataError(
            f"{dir_a} and {dir_b} contain no images: put the A and B images of each pair there under one name"
        )
    return [(files_a[k], files_b[k]) for k in sorted(files_a)]


class PairedImageDataModule(TranslationDataModule):
    """Aligned pairs for pix2pix-style translation, in one of two layouts under ``data_dir``:

    * ``train/`` (and ``val/`` or ``test/``) with A and B side by side in one image, A on the left:
      the official aligned layout (facades, maps, edges2shoes, ... of pix2pix);
    * ``A/train`` + ``B/train`` (and ``A/val`` + ``B/val``, or ``test``), pairs matched by file name
      (suffix ignored; images searched recursively).

    The official pix2pix sets have their own configs (``data=facades``, ...), fetched by
    ``python -m ganzoo.data.download <name>``. A folder in the unpaired CycleGAN layout (trainA, trainB) is
    refused with the config that reads it.

    The val split is ``val`` if present, else ``test``. Training images are stretched to ``load_size``
    squares, and both images of a pair get the same random ``image_size`` crop and (with ``flip``) the
    same mirror; val images are stretched to ``image_size``. ``direction="BtoA"`` swaps the domains, so
    items are always ``(input, target)``; :meth:`domain_dataset` ("B") is then the original A.

    Extra args:
        load_size: side of the square images are resized to before the random crop, >= image_size.
        direction: ``AtoB`` or ``BtoA``.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    paired = True
    dataset_name = "paired images"
    short_name = "paired"
    cpu_num_workers = 2

    def __init__(
        self,
        data_dir: str,
        image_size: int = 256,
        load_size: int = 286,
        channels: int = 3,
        direction: str = "AtoB",
        flip: bool = True,
        batch_size: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(
            data_dir=data_dir, image_size=image_size, channels=channels, flip=flip, batch_size=batch_size, **kwargs
        )
        check_load_size(load_size, image_size)
        self.load_size = load_size
        self.direction = check_direction(direction)

    def _missing(self, what: str) -> DataError:
        if self._has_unpaired_layout():
            return self._unpaired_layout_error()
        name = self.data_dir.name
        fix = "or set data.data_dir=<dataset folder>"
        if name in DATASETS and DATASETS[name].layout == "paired":
            fix += f", or run `python -m ganzoo.data.download {name} --data-dir {self.data_dir.parent}`"
        problem = "does not exist" if not self.data_dir.is_dir() else f"has no {what}"
        return DataError(
            f"{self.data_dir} {problem}: put A|B side-by-side images in {self.data_dir}/train and "
            f"{self.data_dir}/val (or test), or matching files in {self.data_dir}/A/train and "
            f"{self.data_dir}/B/train (and val or test), {fix}"
        )

    def _has_unpaired_layout(self) -> bool:
        """Whether ``data_dir`` holds CycleGAN's trainA/trainB and neither paired layout (train/, A/ or B/)."""
        root = self.data_dir
        paired = any((root / name).is_dir() for name in ("train", "A", "B"))
        return not paired and any((root / name).is_dir() for name in ("trainA", "trainB"))

    def _unpaired_layout_error(self) -> DataError:
        """The folder holds unpaired domains: name the config that reads them, on this very folder."""
        name = self.data_dir.name
        if f"{name}_unpaired" in DATASETS:  # facades, maps, cityscapes: the CycleGAN copy of a pix2pix set
            config = f"{name}_unpaired"
        elif name in DATASETS and DATASETS[name].layout == "unpaired":
            config = name
        else:
            config = "unpaired"
        return DataError(
            f"{self.data_dir} holds the unpaired CycleGAN layout (trainA, trainB), not aligned pairs: "
            f"train an unpaired model on it with data={config} data.data_dir={self.data_dir}, or point "
            "data.data_dir at a folder of pairs (train/ with A|B side by side, or A/train + B/train)"
        )

    def check_available(self) -> None:
        """The dataset folder must exist and not be in the unpaired layout (the rest is checked when it is read)."""
        if not self.data_dir.is_dir():
            raise self._missing("images")
        if self._has_unpaired_layout():
            raise self._unpaired_layout_error()

    def _pairs(self, split: str) -> list[tuple[Path, Path | None]]:
        root = self.data_dir
        names = ("train",) if split == "train" else ("val", "test")
        if (root / "A").is_dir() or (root / "B").is_dir():
            for name in names:
                if (root / "A" / name).is_dir() and (root / "B" / name).is_dir():
                    return match_pairs(root / "A" / name, root / "B" / name)
            raise self._missing("A/train and B/train" if split == "train" else "A/val + B/val or A/test + B/test")
        for name in names:
            files = list_images(root / name) if (root / name).is_dir() else []
            if files:
                return [(f, None) for f in files]
        raise self._missing("images in train" if split == "train" else "images in val or test")

    def _build_translation_sets(self) -> tuple[Dataset, Dataset, DomainSets]:
        sets = {}
        for split in SPLITS:
            transform = build_resize_crop_transform(
                self.image_size, self.channels, self.load_size, train=split == "train", flip=self.flip
            )
            sets[split] = PairedDataset(self._pairs(split), self.channels, transform, swap=self.direction == "BtoA")
        domains: DomainSets = {(d, s): PairedDomain(sets[s], d) for d in DOMAINS for s in SPLITS}
        return sets["train"], sets["val"], domains
