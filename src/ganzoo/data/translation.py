"""Image-to-image translation data, paired (pix2pix) or not (CycleGAN): what both kinds share.

Train and val items are ``(image_A, image_B)``, each float32 (channels, image_size, image_size) in
[-1, 1]; batches are ``(real_A, real_B)``. Besides the pairs, a translation DataModule offers each of the
two domains of each split on its own (for real-image statistics and sample grids).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.utils.data import Dataset

from ganzoo.data.base import ImageDataModule, dataset_fingerprint, without_augmentation
from ganzoo.errors import ConfigError

#: The two domains and the two splits of a translation dataset.
DOMAINS = ("A", "B")
SPLITS = ("train", "val")
#: The values of a paired data module's ``direction``: which domain is the input.
DIRECTIONS = ("AtoB", "BtoA")

#: ``{(domain, split): dataset}`` for domain in :data:`DOMAINS` and split in :data:`SPLITS`; items are
#: ``(image, label)`` and the train sets offer ``without_augmentation()``.
DomainSets = dict[tuple[str, str], Dataset]


def check_direction(direction: str, key: str = "data.direction") -> str:
    """``direction`` when it is one of :data:`DIRECTIONS`; a ConfigError naming ``key`` (where it was set)
    otherwise."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"{key}={direction!r}: use AtoB or BtoA, e.g. {key}=AtoB")
    return direction


class TranslationDataModule(ImageDataModule):
    """Base of the translation DataModules: a train and a val set of ``(image_A, image_B)`` pairs, and the
    four domain sets (A/B x train/val) they are made of.

    Subclasses implement :meth:`_build_translation_sets`. :meth:`domain_dataset` gives one domain without
    augmentation as ``(image, label)`` items, and :meth:`eval_dataset` is domain B's, so real-image statistics
    (FID) are those of the translation target. ``num_classes`` is 0.
    """

    #: Whether item i of domain A and item i of domain B of a split (:meth:`domain_dataset`) are an aligned
    #: pair, two depictions of the same thing, and so are the two images of each train and val item: what
    #: pix2pix and paired metrics (comparing a translation with its own target) need. False: the domains are
    #: independent collections (CycleGAN), and only distribution metrics apply.
    paired: ClassVar[bool] = False
    dataset_num_classes: ClassVar[int | None] = 0
    dataset_name = "translation dataset"
    short_name = "translation"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._domains: DomainSets | None = None

    def _build_translation_sets(self) -> tuple[Dataset, Dataset, DomainSets]:
        """``(train pairs, val pairs, domain sets)``; called once, by the first :meth:`setup`.

        The pair sets accept :data:`~ganzoo.data.sampler.SampleKey` keys (augmentation from the key's seed).
        """
        raise NotImplementedError

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        train, val, self._domains = self._build_translation_sets()
        return train, val

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
        return dataset_fingerprint(self.eval_dataset(split))

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
