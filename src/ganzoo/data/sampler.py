"""A shuffling sampler whose order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Yields a permutation of ``range(length)`` drawn from ``seed`` and the epoch number.

    Lightning calls :meth:`set_epoch` before each epoch. :meth:`resume` makes the next iteration start
    ``start`` positions into the given epoch's order, which is how an interrupted epoch continues
    exactly where the checkpoint left it. The global RNG is never touched.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._start = 0
        self.epoch = epoch

    def resume(self, epoch: int, start: int) -> None:
        self.epoch = epoch
        self._start = start if start < self.length else 0

    def order(self, epoch: int) -> torch.Tensor:
        """The full permutation for ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.length, generator=generator)

    def __iter__(self) -> Iterator[int]:
        start, self._start = self._start, 0
        return iter(self.order(self.epoch)[start:].tolist())

    def __len__(self) -> int:
        return self.length
