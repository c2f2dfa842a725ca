"""Sampling that makes the data a function of (seed, epoch, position): shuffling, sharding and augmentation.

A resumed run therefore sees exactly the batches, flips and crops the uninterrupted run would have seen,
with any number of workers or processes, and the global RNG is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

#: What the train sampler yields and datasets accept: (index, seed of this item's random augmentation).
SampleKey = tuple[int, int]


def split_key(key: int | SampleKey) -> tuple[int, int | None]:
    """``(index, augmentation seed or None)`` from a dataset key: a plain index or a :data:`SampleKey`."""
    if isinstance(key, tuple):
        return key[0], key[1]
    return int(key), None


def item_generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator seeded by an item's augmentation seed, or None (the global RNG) for a plain index."""
    return torch.Generator().manual_seed(seed) if seed is not None else None


def draw_seed(generator: torch.Generator | None) -> int:
    """A sub-seed for one part of an item (e.g. each domain of a translation pair), in [0, 2**62)."""
    return int(torch.randint(0, 2**62, (), generator=generator).item())


class EpochShuffleSampler(Sampler[SampleKey]):
    """Yields this process's share of a permutation of ``range(length)`` with per-item augmentation seeds.

    The permutation and the seeds are drawn from ``seed`` and the epoch number. With ``num_replicas``
    processes, the permutation is padded (by wrapping around) to a multiple of ``num_replicas`` and
    process ``rank`` takes every ``num_replicas``-th element, so the shards are disjoint and equal in size,
    as with ``DistributedSampler``. Lightning calls :meth:`set_epoch` before each epoch; :meth:`resume`
    makes the next iteration start ``start`` items into the given epoch, which is how an interrupted epoch
    continues where its checkpoint left it.
    """

    def __init__(self, length: int, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.length = length
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.per_replica = math.ceil(length / num_replicas)
        self.epoch = 0
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._start = 0
        self.epoch = epoch

    def resume(self, epoch: int, start: int) -> None:
        self.epoch = epoch
        self._start = start if start < self.per_replica else 0

    @property
    def next_start(self) -> int:
        """Items of this process's share of :attr:`epoch` that the next iteration skips (0 unless resumed)."""
        return self._start

    def plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's indices (per_replica,) for ``epoch`` and their augmentation seeds (per_replica,)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.length, generator=generator)
        item_seeds = torch.randint(0, 2**62, (self.length,), generator=generator)
        total = self.per_replica * self.num_replicas
        if total > self.length:
            order = order.repeat(math.ceil(total / self.length))[:total]
        mine = order[self.rank : total : self.num_replicas]
        return mine, item_seeds[mine]

    def __iter__(self) -> Iterator[SampleKey]:
        start, self._start = self._start, 0
        indices, seeds = self.plan(self.epoch)
        return zip(indices[start:].tolist(), seeds[start:].tolist(), strict=True)

    def __len__(self) -> int:
        return self.per_replica
