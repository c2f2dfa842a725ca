"""ganzoo.distributed on one process (no process group, and a group of one) and over two real gloo processes, where
the feature metrics (FID, KID, precision/recall/density/coverage) gather their states through it too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganzoo import distributed
from ganzoo.errors import ConfigError
from ganzoo.metrics import FeatureExtractor, FeatureMetrics


def test_process_share_splits_a_run_batch_evenly() -> None:
    assert distributed.process_share(64, 4, "data.batch_size") == 16
    assert distributed.process_share(7, 1, "data.batch_size") == 7


def test_process_share_names_the_key_and_the_fix_when_the_batch_does_not_split() -> None:
    with pytest.raises(ConfigError, match=r"model.batch_size=10 is the batch of all 4 processes.*multiple of 4"):
        distributed.process_share(10, 4, "model.batch_size")


@pytest.mark.parametrize(("n", "world_size"), [(10, 3), (2, 4), (0, 2), (9, 1), (12, 4)])
def test_shards_cover_the_range_in_rank_order_and_differ_by_at_most_one(n: int, world_size: int) -> None:
    shards = [distributed.shard(n, world_size, rank) for rank in range(world_size)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_refuses_a_rank_outside_the_processes() -> None:
    with pytest.raises(ValueError, match="rank 3 is outside 0..2"):
        distributed.shard(10, 3, 3)


@pytest.fixture
def no_process_group() -> Iterator[None]:
    assert not dist.is_initialized(), "a test before this one left a process group open"
    yield
    distributed.close_process_group()


def test_without_a_process_group_this_is_the_only_process(no_process_group: None) -> None:
    assert not distributed.is_distributed()
    assert distributed.world_size() == 1 and distributed.process_info() == (1, 0)
    assert distributed.sum_over_processes(5) == 5
    payload = {"state": [1, 2]}
    assert distributed.broadcast_from_first(payload) is payload
    flag = torch.tensor([3])
    assert distributed.all_reduce(flag, "max") is flag and flag.tolist() == [3]
    assert distributed.host_group() is None
    distributed.close_process_group()  # nothing to close


def test_a_group_of_one_process_reduces_nothing(tmp_path: Path, no_process_group: None) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    assert distributed.is_distributed() and distributed.process_info() == (1, 0)
    assert distributed.sum_over_processes(5) == 5
    assert distributed.all_reduce(torch.tensor([2.0])).tolist() == [2.0]
    distributed.close_process_group()
    assert not distributed.is_distributed()


class _Projection(FeatureExtractor):
    """Features of uint8 images (N, 1, 4, 4): a fixed random projection to 6 dimensions, the same in every process."""

    name, num_features = "projection", 6

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(16, 6, generator=torch.Generator().manual_seed(0)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images.flatten(1).float() @ self.weight / 255, torch.zeros(len(images), 0)


def _images(n: int, seed: int, high: int) -> torch.Tensor:
    return torch.randint(0, high, (n, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


REAL, FAKE = _images(41, seed=1, high=256), _images(33, seed=2, high=200)


def _feature_metrics(rank: int, world_size: int) -> tuple[list[dict[str, float]], bool]:
    """FID, KID and prdc of two evaluations of FAKE against REAL, each process measuring its share of both as an
    Evaluation does (process 0 keeps the real statistics), and whether the real radii were computed only once."""
    metrics = FeatureMetrics(_Projection(), ["fid", "kid", "prdc"], kid_subsets=4, kid_subset_size=20)
    metrics.update_real(REAL[list(distributed.shard(len(REAL), world_size, rank))])
    state = metrics.real_state()
    metrics.load_real_state(state if rank == 0 else metrics.empty_real_state())
    evaluations, manifolds = [], []
    for fake in (FAKE, FAKE.flip(-1)):
        metrics.reset()
        mine = list(distributed.shard(len(fake), world_size, rank))
        for start in range(0, len(mine), 5):  # uneven batches
            metrics.update_fake(fake[mine[start : start + 5]])
        evaluations.append(metrics.compute(seed=3))
        manifolds.append(metrics.real_manifold)
    return evaluations, manifolds[0] is manifolds[1] and (manifolds[0] is not None) == (rank == 0)


def _two_process_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    evaluations, radii_once = _feature_metrics(rank, 2)
    results = {
        "evaluations": evaluations,
        "radii_once": radii_once,
        "info": distributed.process_info(),
        "world_size": distributed.world_size(),
        "sum": distributed.sum_over_processes(rank + 1),
        "max": distributed.all_reduce(torch.tensor([rank * 10]), "max").tolist(),
        "summed": distributed.all_reduce(torch.tensor([1.0, rank])).tolist(),
        "host_group_is_default": distributed.host_group() is None,  # gloo already
        "first": distributed.broadcast_from_first({"from": rank}),
    }
    distributed.close_process_group()
    results["closed"] = not distributed.is_distributed()
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")


def test_two_processes_agree(tmp_path: Path) -> None:
    mp.spawn(_two_process_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for rank, results in enumerate(ranks):
        assert results["info"] == (2, rank) and results["world_size"] == 2
        assert results["sum"] == 3 and results["max"] == [10] and results["summed"] == [2.0, 1.0]
        assert results["host_group_is_default"] and results["first"] == {"from": 0} and results["closed"]
    # Both processes report what one process measures on all the images; process 0 computed its radii once.
    single, _ = _feature_metrics(0, 1)
    for rank, results in enumerate(ranks):
        assert results["radii_once"], rank
        for alone, shared in zip(single, results["evaluations"], strict=True):
            assert set(shared) == {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage"}
            assert shared["fid"] == pytest.approx(alone["fid"], rel=1e-6), rank  # sums added in another order
            assert {k: v for k, v in shared.items() if k != "fid"} == {k: v for k, v in alone.items() if k != "fid"}
    assert single[0] != single[1] and 0 < single[0]["precision"] < 1 and 0 < single[0]["coverage"] < 1
