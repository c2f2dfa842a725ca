"""The bench's clocks: the timed window of a training run (:class:`Clock`, :func:`window_statistics`) and the
median time of a repeated call (:func:`time_batches`). Loads neither Lightning nor ganzoo.

A training run is timed in steady state: the first ``warmup`` iterations are not timed, and the clock reads at
the start of each iteration (after the batch reached the device), so an iteration's time holds its step, every
callback after it and the next batch's fetch. On a GPU the device is synchronised once at each end of the timed
window, never per iteration (a sync per step would stall the host's run-ahead that real training gets); on a
CPU, where syncs are free, each iteration's time is kept too.
"""

from __future__ import annotations

import cProfile
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.memory import MemoryMeter


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _now() -> tuple[float, float]:
    """Wall time and this process's CPU time (all threads)."""
    return time.perf_counter(), time.process_time()


class Clock:
    """Wall and CPU time of iterations ``warmup`` .. ``warmup + measured - 1``, read at the start of iterations.

    :meth:`tick` is called at the start of every iteration (0, 1, ...), the batch already on the device. The
    device is synchronised only at the start of iteration ``warmup`` and of iteration ``warmup + measured``
    (the end of the timed window), so the timed iterations queue work as freely as in real training. With
    ``keep_each`` (CPUs, where syncs are free) every iteration in the window is stamped, otherwise only its
    ends. ``meter`` is stopped at the end of the window; ``profile`` runs cProfile over the window.
    """

    def __init__(
        self,
        warmup: int,
        measured: int,
        device: torch.device,
        keep_each: bool = True,
        meter: MemoryMeter | None = None,
        profile: bool = False,
    ) -> None:
        if measured < 1 or warmup < 0:
            raise ValueError(f"warm-up {warmup} >= 0 and measured {measured} >= 1 iterations are needed")
        self.warmup, self.measured, self.device, self.keep_each = warmup, measured, device, keep_each
        self.meter = meter
        self.memory: dict[str, Any] = {}
        #: (iteration, wall seconds, CPU seconds) at the start of iterations of the window.
        self.stamps: list[tuple[int, float, float]] = []
        self.profiler = cProfile.Profile() if profile else None
        self.finished = False

    def tick(self, iteration: int) -> None:
        start, end = self.warmup, self.warmup + self.measured
        if iteration < start or iteration > end:
            return
        if iteration in (start, end):
            synchronize(self.device)
        if iteration == end and self.profiler is not None:
            self.profiler.disable()
        if self.keep_each or iteration in (start, end):
            self.stamps.append((iteration, *_now()))
        if iteration == end:
            self.finished = True
            if self.meter is not None:
                self.memory = self.meter.stop()
        elif iteration == start and self.profiler is not None:
            self.profiler.enable()


def window_statistics(stamps: list[tuple[int, float, float]], measured: int, per_iteration: int) -> dict[str, Any]:
    """Throughput over a :class:`Clock`'s window of ``measured`` iterations of ``per_iteration`` images.

    ``images_per_s`` and ``ms_per_iteration`` are over the whole window; ``cpu_ms_per_iteration`` is the CPU time
    the process spent per iteration (all its threads). With every iteration stamped, also the median iteration
    (which ignores the spikes other processes cause on a shared machine) and the iterations' times (each one
    for short windows, percentiles for long ones).
    """
    if len(stamps) < 2 or stamps[-1][0] - stamps[0][0] != measured:
        timed = stamps[-1][0] - stamps[0][0] if len(stamps) > 1 else 0
        raise RuntimeError(f"timed {timed} iterations, expected {measured}")
    seconds = stamps[-1][1] - stamps[0][1]
    result: dict[str, Any] = {
        "images_per_s": per_iteration * measured / seconds,
        "ms_per_iteration": 1000 * seconds / measured,
        "cpu_ms_per_iteration": 1000 * (stamps[-1][2] - stamps[0][2]) / measured,
    }
    if len(stamps) == measured + 1:
        each = [1000 * (b[1] - a[1]) for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
        median = statistics.median(each)
        result["images_per_s_median_iteration"] = per_iteration * 1000 / median
        result["ms_per_iteration_median_iteration"] = median
        if measured <= 100:
            result["ms_per_iteration_each"] = [round(ms, 3) for ms in each]
        else:
            cuts = statistics.quantiles(each, n=20)
            result["ms_per_iteration_percentiles"] = {
                "p5": round(cuts[0], 3), "p50": round(median, 3), "p95": round(cuts[-1], 3), "max": round(max(each), 3)
            }  # fmt: skip
    return result


def time_batches(fn: Callable[[], Any], device: torch.device, warmup: int, measured: int) -> float:
    """Median seconds of ``fn`` over ``measured`` calls after ``warmup`` calls (the device synced after each)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(measured):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)
