"""EpochShuffleSampler: order, shards and augmentation seeds are functions of (seed, epoch, position)."""

from __future__ import annotations

import pytest
import torch

from ganzoo.data.sampler import EpochShuffleSampler, split_key
from ganzoo.data.tensor_dataset import TensorImageDataset
from ganzoo.images import from_uint8


def keys(sampler: EpochShuffleSampler) -> list[tuple[int, int]]:
    return list(sampler)


def test_same_seed_and_epoch_same_plan_other_epoch_other_plan() -> None:
    a, b = EpochShuffleSampler(50, seed=3), EpochShuffleSampler(50, seed=3)
    assert keys(a) == keys(b)
    assert sorted(i for i, _ in keys(a)) == list(range(50))
    first = keys(a)
    a.set_epoch(1)
    assert keys(a) != first and sorted(i for i, _ in keys(a)) == list(range(50))
    assert keys(EpochShuffleSampler(50, seed=4)) != first


@pytest.mark.parametrize(("length", "replicas"), [(10, 2), (11, 3), (5, 4)])
def test_shards_are_equal_and_cover_the_data(length: int, replicas: int) -> None:
    shards = [keys(EpochShuffleSampler(length, seed=0, num_replicas=replicas, rank=r)) for r in range(replicas)]
    assert {len(s) for s in shards} == {-(-length // replicas)}
    assert {i for s in shards for i, _ in s} == set(range(length))
    if length % replicas == 0:  # no padding: disjoint
        assert sum(len(s) for s in shards) == length


def test_resume_continues_the_epoch_where_it_stopped_once() -> None:
    sampler = EpochShuffleSampler(20, seed=1)
    sampler.set_epoch(2)
    whole = keys(sampler)
    sampler.resume(2, 8)
    assert keys(sampler) == whole[8:]
    assert keys(sampler) == whole  # the skip applies to one iteration only
    sampler.resume(2, 8)
    sampler.set_epoch(3)  # Lightning moving on to another epoch cancels the skip
    assert len(keys(sampler)) == 20
    assert len(sampler) == 20


def test_item_seed_fixes_the_flip() -> None:
    images = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    data = TensorImageDataset(images, torch.zeros(64, dtype=torch.int64), 4, 1, train=True, flip=True)
    plain = from_uint8(images[0])
    outcomes = [data[(0, seed)][0] for seed in range(40)]
    assert all(torch.equal(x, plain) or torch.equal(x, plain.flip(-1)) for x in outcomes)
    flipped = sum(torch.equal(x, plain.flip(-1)) for x in outcomes)
    assert 5 < flipped < 35  # both outcomes happen
    for seed in range(10):
        assert torch.equal(data[(0, seed)][0], data[(0, seed)][0])
    assert split_key(7) == (7, None) and split_key((7, 9)) == (7, 9)
