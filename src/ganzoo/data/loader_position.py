"""Where a train loader is in its epoch's order, counted where batches leave the loader.

A DataModule saves this position in its ``state_dict`` (Lightning stores it in checkpoints), so a resumed run
continues the interrupted epoch at the next batch the uninterrupted run would have taken. The count is kept
by the loader, not the sampler: DataLoader workers draw the sampler's keys ahead of the training loop, so the
sampler has always run further than the batches actually trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from torch.utils.data import DataLoader, Dataset

from ganzoo.data.sampler import EpochShuffleSampler


@dataclass(frozen=True)
class LoaderPosition:
    """``items`` of this process's share of epoch ``epoch`` already taken (in whole batches) by the training loop.

    Taken batches are trained batches wherever ganzoo writes checkpoints: after a training step (at its end, or
    after validation) or when fetching the next batch failed, never between a fetch and its training step.
    """

    epoch: int
    items: int

    def state_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> LoaderPosition:
        return cls(epoch=int(state["epoch"]), items=int(state["items"]))


class PositionTrackingLoader(DataLoader):
    """A DataLoader over an :class:`~ganzoo.data.sampler.EpochShuffleSampler` that knows its :attr:`position`.

    :attr:`position` is where the current (or, before the first, the next) pass over the sampler stands: its
    epoch and the items of this process's share handed out so far, counting from a resumed start. Batches are
    exactly those of a plain DataLoader with the same arguments.

    Lightning may rebuild a DataLoader with another sampler (``overfit_batches``); :attr:`position` is then None.
    """

    def __init__(self, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.position: LoaderPosition | None = self._next_pass_start()

    def _next_pass_start(self) -> LoaderPosition | None:
        sampler = self.sampler
        if not isinstance(sampler, EpochShuffleSampler):
            return None
        return LoaderPosition(sampler.epoch, sampler.next_start)

    def __iter__(self) -> Iterator[Any]:
        # Read before the base iterator exists: worker processes start drawing the sampler's keys (and so
        # consume its resumed start) as soon as it is created.
        start = self._next_pass_start()
        self.position = start
        batches = super().__iter__()
        if start is None:
            return batches
        return self._counted(batches, start)

    def _counted(self, batches: Iterator[Any], start: LoaderPosition) -> Iterator[Any]:
        assert isinstance(self.sampler, EpochShuffleSampler) and self.batch_size is not None
        share = self.sampler.per_replica
        items = start.items
        for batch in batches:
            # The last batch of a pass may be short (drop_last=False): the share is then used up.
            items = min(items + self.batch_size, share)
            self.position = LoaderPosition(start.epoch, items)
            yield batch
