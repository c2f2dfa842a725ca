"""Processes of a run: how work and batches split over them, and the few collectives ganzoo uses.

Every function works alike inside and outside a DDP run: inside Lightning's DDP (or torchrun) the default
process group is initialised; the CLIs, notebooks and single-device runs have none, and then each function
behaves as the only process of a group of one (no collective is issued).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.distributed as dist

from ganzoo.errors import ConfigError


def is_distributed() -> bool:
    """Whether this process belongs to an initialised default process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default process group; 1 without one."""
    return dist.get_world_size() if is_distributed() else 1


def process_info() -> tuple[int, int]:
    """(world size, global rank); (1, 0) without an initialised process group."""
    if is_distributed():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def process_share(total: int, world_size: int, key: str) -> int:
    """Each process's share of ``total``, a batch size of the whole run (config key ``key``, for the error).

    Raises :class:`~ganzoo.errors.ConfigError` when ``total`` does not split evenly over ``world_size``.
    """
    if total % world_size:
        raise ConfigError(
            f"{key}={total} is the batch of all {world_size} processes together and must split evenly over "
            f"them: set {key} to a multiple of {world_size}"
        )
    return total // world_size


def shard(n: int, world_size: int, rank: int) -> range:
    """The contiguous share of ``range(n)`` that process ``rank`` of ``world_size`` handles.

    Shares differ in size by at most one, and concatenated in rank order they give ``range(n)`` back, so a
    gathered result is in the same order as in a single process.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    per, extra = divmod(n, world_size)
    start = rank * per + min(rank, extra)
    return range(start, start + per + (1 if rank < extra else 0))


def all_reduce(tensor: torch.Tensor, op: Literal["sum", "max"] = "sum", group: Any = None) -> torch.Tensor:
    """``tensor`` reduced (``op``: "sum" or "max") over the processes of ``group`` (None: the default one), in
    place, and returned; untouched on a single process.

    Every process of the group must call it. One collective and no barrier (``trainer.strategy.reduce`` adds
    one); with NCCL ``tensor`` must be on the process's GPU.
    """
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM, group=group)
    return tensor


def gather_rows(block: torch.Tensor) -> torch.Tensor:
    """The (n_i, D) blocks of every process (sizes may differ), concatenated in rank order: the rows one process would
    hold. Every process must call it; untouched on a single process."""
    if world_size() == 1:
        return block
    from torchmetrics.utilities.distributed import gather_all_tensors  # pads and trims uneven blocks

    return torch.cat(gather_all_tensors(block))


def sum_over_processes(value: int, device: torch.device | str = "cpu") -> int:
    """The sum of an integer over all processes (NCCL needs ``device`` to be the process's GPU)."""
    if world_size() == 1:
        return value
    total = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(total)
    return int(total.item())


def broadcast_from_first(obj: Any) -> Any:
    """Process 0's ``obj`` on every process (picklable; process-internal data, never a user's file)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def host_group() -> Any:
    """A process group whose collectives run on the host (gloo), for flags that must not wait for a GPU.

    The default group itself (returned as None, which collectives read as the default) when it is gloo
    already; otherwise a new gloo group over all processes, which every process must create together (call
    it on every process, at the same point). None on a single process.
    """
    if world_size() == 1 or dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo")


def close_process_group() -> None:
    """Destroy the default process group, if there is one (so that the next run in this process starts fresh)."""
    if is_distributed():
        dist.destroy_process_group()
