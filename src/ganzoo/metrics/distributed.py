"""The few collective operations evaluation needs, working alike inside and outside a DDP run.

Inside Lightning's DDP the default process group is initialised; the CLIs run in one process without one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def process_info() -> tuple[int, int]:
    """(world size, global rank); (1, 0) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def sum_over_processes(value: int, device: torch.device | str = "cpu") -> int:
    """The sum of an integer over all processes (NCCL needs ``device`` to be the process's GPU)."""
    if process_info()[0] == 1:
        return value
    total = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(total)
    return int(total.item())


def shard(n: int, world_size: int, rank: int) -> range:
    """The contiguous share of ``range(n)`` that process ``rank`` of ``world_size`` handles.

    Shares differ in size by at most one, and concatenated in rank order they give ``range(n)`` back, so a
    gathered result is in the same order as in a single process.
    """
    per, extra = divmod(n, world_size)
    start = rank * per + min(rank, extra)
    return range(start, start + per + (1 if rank < extra else 0))


def broadcast_from_first(obj: Any) -> Any:
    """Process 0's ``obj`` on every process (picklable; process-internal data, never a user's file)."""
    if process_info()[0] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
