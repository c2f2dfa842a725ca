"""Unpaired image-to-image translation data (CycleGAN): two image domains, A and B, with no pairing.

Follows the official CycleGAN code (junyanz/pytorch-CycleGAN-and-pix2pix, ``data/unaligned_dataset.py`` and
``data/base_dataset.py``): an epoch has max(|A|, |B|) items, item i takes A[i % |A|] and a random B, and
preprocessing is "resize_and_crop" (stretch to load_size x load_size, random image_size crop, random flip;
see :class:`~ganzoo.data.transforms.ResizeCropTransform`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganzoo.data.base import check_load_size, dataset_fingerprint, without_augmentation
from ganzoo.data.download import DATASETS
from ganzoo.data.folders import ImageFileDataset, list_images
from ganzoo.data.image_file import IMAGE_EXTENSIONS
from ganzoo.data.sampler import SampleKey, draw_seed, item_generator, split_key
from ganzoo.data.transforms import build_resize_crop_transform
from ganzoo.data.translation import DOMAINS, SPLITS, DomainSets, TranslationDataModule
from ganzoo.errors import DataError


class UnpairedDataset(Dataset):
    """``(image_A, image_B)`` items from two domain datasets of ``(image, label)`` items; labels are dropped.

    Length max(|A|, |B|). With ``train`` and a :data:`~ganzoo.data.sampler.SampleKey` ``(i, seed)``:
    A is A[i % |A|] and B is B[j], j drawn uniformly from ``seed`` (the official unaligned dataset's
    ``random.randint`` when not ``serial_batches``); each domain's own crop and flip come from sub-seeds
    of ``seed``, so items are reproducible, resumable and independent of workers and processes.
    Otherwise (val, or a plain index) B is B[i % |B|] (``serial_batches``); a plain index with ``train``
    draws B and the augmentation from the global RNG.
    """

    def __init__(self, domain_a: Dataset, domain_b: Dataset, *, train: bool) -> None:
        self.domain_a = domain_a
        self.domain_b = domain_b
        self.train = train
        self.size_a = len(domain_a)  # type: ignore[arg-type]
        self.size_b = len(domain_b)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return max(self.size_a, self.size_b)

    def pick(self, key: int | SampleKey) -> tuple[SampleKey | int, SampleKey | int]:
        """The keys of the A and B items that make up item ``key``."""
        index, seed = split_key(key)
        index_a = index % self.size_a
        if not self.train:
            return index_a, index % self.size_b
        generator = item_generator(seed)
        index_b = int(torch.randint(0, self.size_b, (), generator=generator).item())
        return (index_a, draw_seed(generator)), (index_b, draw_seed(generator))

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        key_a, key_b = self.pick(key)
        return self.domain_a[key_a][0], self.domain_b[key_b][0]

    def without_augmentation(self) -> UnpairedDataset:
        """Deterministic pairs A[i % |A|], B[i % |B|] without crop or flip."""
        return UnpairedDataset(without_augmentation(self.domain_a), without_augmentation(self.domain_b), train=False)

    def fingerprint(self) -> str | None:
        parts = [dataset_fingerprint(self.domain_a), dataset_fingerprint(self.domain_b)]
        if any(p is None for p in parts):
            return None
        return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]  # type: ignore[arg-type]


class UnpairedDataModule(TranslationDataModule):
    """Base of the unpaired translation DataModules: two independent domain sets per split, paired at random.

    Subclasses implement :meth:`_build_domains`. Train items are random pairs (see :class:`UnpairedDataset`),
    val items deterministic ones.
    """

    dataset_name = "unpaired translation dataset"
    short_name = "unpaired"

    def _build_domains(self) -> DomainSets:
        """``{(domain, split): dataset}`` for domain in A, B and split in train, val.

        Items are ``(image, label)`` and accept :data:`~ganzoo.data.sampler.SampleKey` keys; the train
        sets augment (from the key's seed) and offer ``without_augmentation()``.
        """
        raise NotImplementedError

    def _build_translation_sets(self) -> tuple[Dataset, Dataset, DomainSets]:
        domains = self._build_domains()
        return (
            UnpairedDataset(domains["A", "train"], domains["B", "train"], train=True),
            UnpairedDataset(domains["A", "val"], domains["B", "val"], train=False),
            domains,
        )


def _missing_folder_error(folder: Path, data_dir: Path, what: str) -> DataError:
    fix = f"put {what} there (layout: {data_dir}/trainA, trainB, testA, testB), or set data.data_dir=<dataset folder>"
    if data_dir.name in DATASETS and DATASETS[data_dir.name].layout == "unpaired":
        # The download is the fix most users need, so it comes first.
        fix = f"run `python -m ganzoo.data.download {data_dir.name} --data-dir {data_dir.parent}`, or {fix}"
    state = "does not exist" if not folder.is_dir() else f"contains no images ({', '.join(IMAGE_EXTENSIONS)})"
    return DataError(f"{folder} {state}: {fix}")


def domain_files(data_dir: Path, folder: str, what: str) -> list[Path]:
    """The images below ``data_dir/folder`` (recursive, sorted); a one-line DataError when missing or empty."""
    path = data_dir / folder
    files = list_images(path) if path.is_dir() else []
    if not files:
        raise _missing_folder_error(path, data_dir, what)
    return files


class UnpairedImageFolderDataModule(UnpairedDataModule):
    """The official CycleGAN layout: ``data_dir/trainA``, ``trainB``, ``testA``, ``testB`` (searched recursively).

    ``python -m ganzoo.data.download horse2zebra`` (and the other official CycleGAN names; facades, maps and
    cityscapes as ``facades_unpaired``, ...) writes this layout.
    Images of any mode are converted to ``channels``. Training images are stretched to ``load_size``
    squares, randomly cropped to ``image_size`` and, with ``flip``, randomly mirrored; val images (and
    :meth:`domain_dataset` of either split) are stretched to ``image_size`` directly, like the official
    test options (load_size = crop_size, no flip).

    Extra args:
        load_size: side of the square images are resized to before the random crop, >= image_size.
        val_split: folder prefix of the val domains: ``test`` (official: testA, testB) or e.g. ``val``.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    dataset_name = "unpaired image folders"
    short_name = "unpaired"
    cpu_num_workers = 2

    def __init__(
        self,
        data_dir: str,
        image_size: int = 256,
        load_size: int = 286,
        channels: int = 3,
        flip: bool = True,
        batch_size: int = 1,
        val_split: str = "test",
        **kwargs,
    ) -> None:
        super().__init__(
            data_dir=data_dir, image_size=image_size, channels=channels, flip=flip, batch_size=batch_size, **kwargs
        )
        check_load_size(load_size, image_size)
        self.load_size = load_size
        self.val_split = val_split

    def folder(self, domain: str, split: str) -> str:
        """The subfolder of ``data_dir`` holding ``domain`` of ``split``: trainA, trainB, testA, testB."""
        return f"{'train' if split == 'train' else self.val_split}{domain}"

    def check_available(self) -> None:
        """The four domain folders must exist (whether they hold images is checked when they are read)."""
        for split in SPLITS:
            for domain in DOMAINS:
                folder = self.data_dir / self.folder(domain, split)
                if not folder.is_dir():
                    raise _missing_folder_error(folder, self.data_dir, f"the {split} images of domain {domain}")

    def _build_domains(self) -> DomainSets:
        domains: DomainSets = {}
        for split in SPLITS:
            transform = build_resize_crop_transform(
                self.image_size, self.channels, self.load_size, train=split == "train", flip=self.flip
            )
            for domain in DOMAINS:
                files = domain_files(
                    self.data_dir, self.folder(domain, split), f"the {split} images of domain {domain}"
                )
                domains[domain, split] = ImageFileDataset(files, [-1] * len(files), self.channels, transform)
        return domains
