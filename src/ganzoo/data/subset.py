"""A fixed fraction of a train set (``data.train_fraction``): the small-data regime of data-efficient GAN training."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from ganzoo.data.sampler import SampleKey, split_key
from ganzoo.errors import ConfigError

#: The subset depends on the data and the fraction only, never on the run's seed: runs that compare augmentations
#: or seeds train on the same images.
SUBSET_SEED = 0


def check_fraction(fraction: float | None) -> float | None:
    """``data.train_fraction`` as a float in (0, 1], or None; a ConfigError otherwise."""
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise ConfigError(f"data.train_fraction={fraction!r} must lie in (0, 1] (or be null for all): e.g. 0.1")
    return float(fraction)


def subset_indices(length: int, fraction: float) -> torch.Tensor:
    """The ``ceil(fraction * length)`` indices of the subset, int64 ascending: a permutation of ``range(length)``
    drawn from :data:`SUBSET_SEED`, cut to size, so a smaller fraction's subset lies inside a larger one's."""
    count = max(1, math.ceil(fraction * length))
    order = torch.randperm(length, generator=torch.Generator().manual_seed(SUBSET_SEED))
    return order[:count].sort().values


class TrainSubset(Dataset):
    """The items of ``dataset`` at ``indices``, keyed as the dataset is (a plain index or an ``(index, seed)``
    :data:`~ganzoo.data.sampler.SampleKey`, so per-item augmentation seeds still reach the items)."""

    def __init__(self, dataset: Dataset, indices: torch.Tensor) -> None:
        self.dataset = dataset
        self.indices = indices.tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = split_key(key)
        source = self.indices[index]
        return self.dataset[source if seed is None else (source, seed)]
