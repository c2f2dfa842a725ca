"""Peak memory of a timed window: CUDA allocations on a GPU, the process's resident set on a CPU.

On Linux the resident-set peak is VmHWM after resetting it through ``/proc/self/clear_refs`` at the start;
elsewhere ``ru_maxrss``, the process's lifetime peak. Loads neither Lightning nor ganzoo.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch


def _proc_status_kb(field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None where there is none."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


class MemoryMeter:
    """Peak memory from :meth:`start` to :meth:`stop`: CUDA allocations, or the process's resident set.

    :meth:`stop` returns (and keeps in :attr:`result`) MiB values: ``cuda_start_mb``, ``cuda_peak_mb`` and
    ``cuda_peak_reserved_mb`` on a GPU; ``rss_start_mb``, ``rss_peak_mb``, ``rss_growth_mb`` and how the peak
    was read (``memory_method``) everywhere.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: dict[str, Any] = {}
        self.cpu_reset = False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.result["cuda_start_mb"] = torch.cuda.memory_allocated() / 2**20
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (the peak RSS) to the current RSS
            self.cpu_reset = True
        except OSError:
            pass
        rss = _proc_status_kb("VmRSS")
        self.result["rss_start_mb"] = rss / 1024 if rss is not None else None

    def stop(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            self.result["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        hwm = _proc_status_kb("VmHWM") if self.cpu_reset else None
        if hwm is not None:
            self.result["rss_peak_mb"] = hwm / 1024
            self.result["memory_method"] = "VmHWM since the start of training (/proc/self/clear_refs)"
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.result["rss_peak_mb"] = peak / (2**20 if sys.platform == "darwin" else 1024)
            self.result["memory_method"] = "ru_maxrss (the process's lifetime peak)"
        if self.result.get("rss_start_mb") is not None:
            self.result["rss_growth_mb"] = self.result["rss_peak_mb"] - self.result["rss_start_mb"]
        return self.result
