"""An offline translation task on Fashion-MNIST: one clothing class to another, unpaired."""

from __future__ import annotations

from pathlib import Path

import torch

from ganzoo.data.fashion_mnist import NUM_CLASSES as FASHION_MNIST_CLASSES
from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTTranslationSource, load_split
from ganzoo.data.tensor_dataset import TensorImageDataset
from ganzoo.data.translation import SPLITS, DomainSets
from ganzoo.data.unpaired import UnpairedDataModule
from ganzoo.errors import ConfigError, DataError


class FashionMNISTDomainsDataModule(FashionMNISTTranslationSource, UnpairedDataModule):
    """An offline translation task on Fashion-MNIST: domain A = class ``class_a``, domain B = class ``class_b``.

    Nothing is paired and no image is in both domains: domain A takes class ``class_a`` from the first
    half of a split, domain B class ``class_b`` from the second half (train: the 60k train files, val:
    the 10k t10k files). Files are found like :class:`~ganzoo.data.fashion_mnist.FashionMNISTDataModule`
    finds them (``data_dir``, ``system_dir``, then a download: see
    :class:`~ganzoo.data.fashion_mnist.FashionMNISTFiles`). Images are resized to ``image_size``;
    no crop, and flips only with ``flip``. In :meth:`domain_dataset`, labels are the class ids.
    :meth:`evaluator_data` names all of Fashion-MNIST for the evaluator classifier.
    ``source_indices[(domain, split)]`` holds each domain image's index in its Fashion-MNIST split.

    Extra args:
        class_a, class_b: Fashion-MNIST class ids (0-9; 7 sneaker, 9 ankle boot).
        system_dir, download: see FashionMNISTDataModule.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    dataset_name = "Fashion-MNIST domains"
    short_name = "fmnist_ab"

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

    def _build_domains(self) -> DomainSets:
        files = self.files.locate()
        domains: DomainSets = {}
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
