"""Unpaired image-to-image translation data (CycleGAN): two image domains, A and B, with no pairing.

Train and val items are ``(image_A, image_B)``, each float32 (channels, image_size, image_size) in
[-1, 1]; batches are ``(real_A, real_B)``. Follows the official CycleGAN code
(junyanz/pytorch-CycleGAN-and-pix2pix, ``data/unaligned_dataset.py`` and ``data/base_dataset.py``):
an epoch has max(|A|, |B|) items, item i takes A[i % |A|] and a random B, and preprocessing is
"resize_and_crop" (stretch to load_size x load_size, random image_size crop, random flip).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.data import Dataset

from ganzoo.data.base import ImageDataModule, check_load_size
from ganzoo.data.download import CYCLEGAN_DATASETS
from ganzoo.data.fashion_mnist import NUM_CLASSES as FASHION_MNIST_CLASSES
from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule, load_split
from ganzoo.data.folders import ImageFileDataset, list_images
from ganzoo.data.image_file import IMAGE_EXTENSIONS
from ganzoo.data.sampler import SampleKey, split_key
from ganzoo.data.tensor_dataset import TensorImageDataset
from ganzoo.data.transforms import resize_square, to_channels
from ganzoo.errors import ConfigError, DataError
from ganzoo.images import from_uint8

#: The two domains and the two splits of a translation dataset.
DOMAINS = ("A", "B")
SPLITS = ("train", "val")


def item_generator(seed: int | None) -> torch.Generator | None:
    """A generator seeded by an item's seed, or None (the global RNG) for a plain index."""
    return torch.Generator().manual_seed(seed) if seed is not None else None


def draw_seed(generator: torch.Generator | None) -> int:
    """A sub-seed for one part of an item (e.g. each domain's crop and flip)."""
    return int(torch.randint(0, 2**62, (), generator=generator).item())


@dataclass(frozen=True)
class CropParams:
    """Where to crop and whether to flip; drawn once and applied to every image of an item."""

    top: int = 0
    left: int = 0
    flip: bool = False


@dataclass(frozen=True)
class ResizeCropTransform:
    """The official "resize_and_crop" preprocessing: uint8 (C, H, W) -> float32 (channels, S, S) in [-1, 1].

    Training (``random_crop``): the image is stretched to ``load_size`` x ``load_size`` (aspect ratio not
    kept, as in the official ``transforms.Resize([load_size, load_size])``), a random ``image_size``
    square is cropped and, with ``flip``, mirrored with probability 1/2. Otherwise the image is stretched
    straight to ``image_size`` (the official test options set load_size = crop_size, so nothing is cropped).
    Resizing is antialiased bilinear (the official code uses PIL bicubic).
    """

    image_size: int
    channels: int
    load_size: int
    random_crop: bool = False
    flip: bool = False

    @property
    def is_random(self) -> bool:
        return self.random_crop or self.flip

    def deterministic(self) -> ResizeCropTransform:
        """The evaluation pipeline: resize to image_size, no crop, no flip."""
        return dataclasses.replace(self, random_crop=False, flip=False)

    def draw(self, seed: int | None) -> CropParams:
        """This item's crop position and flip, a function of ``seed`` (the global RNG when None)."""
        if not self.is_random:
            return CropParams()
        generator = item_generator(seed)
        top = left = 0
        if self.random_crop:
            span = self.load_size - self.image_size + 1
            top = int(torch.randint(0, span, (), generator=generator).item())
            left = int(torch.randint(0, span, (), generator=generator).item())
        flip = bool(torch.rand((), generator=generator) < 0.5) if self.flip else False
        return CropParams(top, left, flip)

    def apply(self, x: torch.Tensor, params: CropParams) -> torch.Tensor:
        """Preprocess one uint8 image with given crop and flip (so that paired images share them)."""
        x = to_channels(x, self.channels)
        if self.random_crop:
            x = resize_square(x, self.load_size)
            s = self.image_size
            x = x[..., params.top : params.top + s, params.left : params.left + s]
        else:
            x = resize_square(x, self.image_size)
        if params.flip:
            x = x.flip(-1)
        return from_uint8(x)

    def __call__(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        return self.apply(x, self.draw(seed))


def build_resize_crop_transform(
    image_size: int, channels: int, load_size: int, *, train: bool, flip: bool
) -> ResizeCropTransform:
    """Random crop (when load_size > image_size) and flip for training; a plain resize otherwise."""
    return ResizeCropTransform(
        image_size, channels, load_size, random_crop=train and load_size > image_size, flip=train and flip
    )


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
        parts = [_fingerprint(self.domain_a), _fingerprint(self.domain_b)]
        if any(p is None for p in parts):
            return None
        return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def without_augmentation(dataset: Dataset) -> Dataset:
    """``dataset.without_augmentation()`` when it has one, else ``dataset`` itself."""
    view = getattr(dataset, "without_augmentation", None)
    return view() if view is not None else dataset


def _fingerprint(dataset: Dataset) -> str | None:
    digest = getattr(dataset, "fingerprint", None)
    return digest() if digest is not None else None


class UnpairedDataModule(ImageDataModule):
    """Base of the translation DataModules: four domain sets (A/B x train/val) paired into translation items.

    Subclasses implement :meth:`_build_domains`. Train items are random pairs (see
    :class:`UnpairedDataset`), val items deterministic ones. :meth:`domain_dataset` gives one domain
    without augmentation as ``(image, label)`` items, and :meth:`eval_dataset` is domain B's, so
    real-image statistics (FID) are those of the translation target. ``num_classes`` is 0.
    """

    dataset_num_classes: ClassVar[int | None] = 0
    dataset_name = "translation dataset"
    short_name = "unpaired"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._domains: dict[tuple[str, str], Dataset] | None = None

    def _build_domains(self) -> dict[tuple[str, str], Dataset]:
        """``{(domain, split): dataset}`` for domain in A, B and split in train, val.

        Items are ``(image, label)`` and accept :data:`~ganzoo.data.sampler.SampleKey` keys; the train
        sets augment (from the key's seed) and offer ``without_augmentation()``.
        """
        raise NotImplementedError

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        self._domains = self._build_domains()
        domains = self._domains
        return (
            UnpairedDataset(domains["A", "train"], domains["B", "train"], train=True),
            UnpairedDataset(domains["A", "val"], domains["B", "val"], train=False),
        )

    def domain_dataset(self, domain: str, split: str) -> Dataset:
        """Domain ``domain`` ("A" or "B") of ``split`` ("train" or "val"): un-augmented ``(image, label)`` items."""
        if domain not in DOMAINS:
            raise ConfigError(f"unknown domain {domain!r}: use A or B")
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}: use train or val")
        self._require_setup()
        assert self._domains is not None
        return without_augmentation(self._domains[domain, split])

    def eval_dataset(self, split: str) -> Dataset:
        """Domain B of ``split`` without augmentation: the target whose statistics translations are compared with."""
        return self.domain_dataset("B", split)

    def fingerprint(self, split: str) -> str | None:
        """A digest of domain B of ``split`` (what :meth:`eval_dataset` returns)."""
        return _fingerprint(self.eval_dataset(split))

    def fixed_examples(self, n: int, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` un-augmented images of each domain, (n, C, S, S) each in [-1, 1], for sample grids.

        A domain with fewer than ``n`` images repeats from its start.
        """
        out = []
        for domain in DOMAINS:
            dataset = self.domain_dataset(domain, split)
            size = len(dataset)  # type: ignore[arg-type]
            out.append(torch.stack([dataset[i % size][0] for i in range(n)]))
        return out[0], out[1]


def _missing_folder_error(folder: Path, data_dir: Path, what: str) -> DataError:
    fix = f"put {what} there (layout: {data_dir}/trainA, trainB, testA, testB), or set data.data_dir=<dataset folder>"
    if data_dir.name in CYCLEGAN_DATASETS:
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

    ``python -m ganzoo.data.download horse2zebra`` (and the other official names) writes this layout.
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

    def _build_domains(self) -> dict[tuple[str, str], Dataset]:
        domains: dict[tuple[str, str], Dataset] = {}
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


class FashionMNISTDomainsDataModule(UnpairedDataModule):
    """An offline translation task on Fashion-MNIST: domain A = class ``class_a``, domain B = class ``class_b``.

    Nothing is paired and no image is in both domains: domain A takes class ``class_a`` from the first
    half of a split, domain B class ``class_b`` from the second half (train: the 60k train files, val:
    the 10k t10k files). Files are found like :class:`~ganzoo.data.fashion_mnist.FashionMNISTDataModule`
    finds them (``data_dir``, ``system_dir``, then a download). Images are resized to ``image_size``;
    no crop, and flips only with ``flip``. In :meth:`domain_dataset`, labels are the class ids.
    ``source_indices[(domain, split)]`` holds each domain image's index in its Fashion-MNIST split.

    Extra args:
        class_a, class_b: Fashion-MNIST class ids (0-9; 7 sneaker, 9 ankle boot).
        system_dir, download: see FashionMNISTDataModule.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    dataset_name = "Fashion-MNIST domains"
    short_name = "fmnist_ab"

    # The file lookup and download of FashionMNISTDataModule; they only read data_dir, system_dir, download.
    search_dirs = FashionMNISTDataModule.search_dirs
    _missing_error = FashionMNISTDataModule._missing_error
    _locate = FashionMNISTDataModule._locate
    prepare_data = FashionMNISTDataModule.prepare_data
    check_available = FashionMNISTDataModule.check_available

    def __init__(
        self,
        data_dir: str = "data",
        class_a: int = 7,
        class_b: int = 9,
        image_size: int = 32,
        channels: int = 1,
        flip: bool = False,
        batch_size: int = 16,
        system_dir: str | None = SYSTEM_DIR,
        download: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(
            data_dir=data_dir, image_size=image_size, channels=channels, flip=flip, batch_size=batch_size, **kwargs
        )
        for key, value in (("class_a", class_a), ("class_b", class_b)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < FASHION_MNIST_CLASSES:
                raise ConfigError(f"data.{key} must be a Fashion-MNIST class id 0-9, got {value!r}: e.g. data.{key}=7")
        self.class_a = class_a
        self.class_b = class_b
        self.system_dir = Path(system_dir) if system_dir else None
        self.download = download
        self.source_indices: dict[tuple[str, str], torch.Tensor] = {}

    @property
    def target_class(self) -> int:
        """The class translations A -> B should be judged as (the evaluation's class accuracy)."""
        return self.class_b

    def evaluator_data(self) -> FashionMNISTDataModule:
        """All of Fashion-MNIST at this resolution: what the evaluator classifier trains on (10 classes), so
        translations are judged by the same classifier as every other Fashion-MNIST run."""
        return FashionMNISTDataModule(
            data_dir=str(self.data_dir), image_size=self.image_size, channels=self.channels,
            system_dir=str(self.system_dir) if self.system_dir else None, download=self.download,
        )  # fmt: skip

    def _build_domains(self) -> dict[tuple[str, str], Dataset]:
        files = self._locate()
        domains: dict[tuple[str, str], Dataset] = {}
        for split in SPLITS:
            images, labels = load_split(*files[split])
            half = images.shape[0] // 2
            for domain, wanted, lo, hi in (("A", self.class_a, 0, half), ("B", self.class_b, half, images.shape[0])):
                index = lo + torch.nonzero(labels[lo:hi] == wanted).flatten()
                if index.numel() == 0:
                    which = "first" if domain == "A" else "second"
                    raise DataError(
                        f"Fashion-MNIST {split} split has no class {wanted} images in its {which} half "
                        f"(domain {domain}): set data.class_{domain.lower()} to another class or replace the files"
                    )
                self.source_indices[domain, split] = index
                domains[domain, split] = TensorImageDataset(
                    images[index], labels[index], self.image_size, self.channels, train=split == "train", flip=self.flip
                )
        return domains
