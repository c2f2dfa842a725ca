"""Each measurement in its own Python process, and the driver that runs a list of plans through them.

A measurement process is ``python -m <module> --worker <job as JSON> --result <file>`` in the repository
(:func:`run_subprocess`), so peak memory is per measurement and no allocator state is shared; it sets itself up
as ``ganzoo.train`` would (:func:`training_settings`, :func:`quiet_lightning`). :func:`run_plans` runs every
repeat of every plan with the sides alternating (full, bare, plain; then bare, plain, full; ...).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench import REPO
from bench.configs import job_values
from bench.machine import load_average
from bench.plans import EXPERIMENTS, OVERRIDES, THREADS, Plan, Variant
from bench.report import fmt, summarise

#: The entry point whose ``--worker`` / ``--eval-worker`` flags run one measurement in a process of its own.
WORKER_MODULE = "bench.throughput"


@dataclass
class Job:
    """One measurement: a side of a (model, config, variant) for ``warmup`` + ``measured`` iterations."""

    model: str
    config: str
    side: str  # full | bare | plain
    device: str
    variant: Variant
    warmup: int
    measured: int
    seed: int = 42
    threads: int | None = None
    profile: bool = False
    #: The resolved config values the bare and plain sides train with (:func:`bench.configs.job_values`),
    #: composed by the driver: composing needs ganzoo's config resolvers, whose module loads Lightning.
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        data["variant"] = Variant(**data["variant"])
        return cls(**data)


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the tables)."""
    print(message, file=sys.stderr, flush=True)


def training_settings(device: torch.device) -> None:
    """What ``ganzoo.train`` sets for every run, set in every measurement process on every side."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    torch.set_flush_denormal(True)


def quiet_lightning() -> None:
    """Lightning's and the libraries' advice off (as ``ganzoo.train`` has it), and the warnings that the bench's
    in-memory loader and short runs trigger."""
    from ganzoo.cli import quiet_library_noise

    quiet_library_noise()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def one_line(text: str, limit: int = 400) -> str:
    """The last informative line of an error output, for tables and JSON."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|error:)", line)]
    line = (errors or lines or ["(no output)"])[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_subprocess(
    module: str, flag: str, payload: str, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``python -m <module> <flag> <payload> --result <file>`` in the repository; its result, or ``{"error": ...}``
    (one line, and the output's tail under ``error_tail``)."""
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", module, flag, payload, "--result", str(out)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=max(timeout, 1),
                env={**os.environ, **(env or {})},
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s"}
        if proc.returncode != 0 or not out.is_file():
            output = (proc.stderr or "") + (proc.stdout or "")
            tail = output.strip().splitlines()[-15:]
            return {"error": f"exit status {proc.returncode}: {one_line(output)}", "error_tail": tail}
        return json.loads(out.read_text())


def run_plans(
    plans: list[Plan],
    device: torch.device,
    sides: Sequence[str],
    timeout: float,
    notes: list[str],
    deadline: float | None = None,
    log_prefix: str = "",
) -> list[dict[str, Any]]:
    """Run every plan's repeats, each side in its own process, alternating the order of the sides; the summaries
    (:func:`bench.report.summarise`).

    With ``deadline`` (a ``time.monotonic()`` value), a measurement that cannot start at least 10 s before it is
    skipped (recorded as such), and each process may run until the deadline at most.
    """
    total = sum(len(sides) * p.repeats for p in plans)
    done = 0
    started = time.monotonic()
    entries = []
    for plan in plans:
        try:
            values = job_values(plan.model, plan.config, plan.variant)
        except KeyError as e:
            notes.append(f"{plan.model} {plan.config} {plan.variant.name}: skipped, {e.args[0]}")
            continue
        plan.runs = {side: [] for side in sides}
        for repeat in range(plan.repeats):
            shift = repeat % len(sides)
            for side in [*sides[shift:], *sides[:shift]]:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left < 10:
                    result: dict[str, Any] = {"error": "skipped: the time budget was spent", "skipped": True}
                else:
                    job = Job(plan.model, plan.config, side, str(device), plan.variant, plan.warmup, plan.measured)
                    job.threads, job.values = plan.threads, values
                    env = {"OMP_NUM_THREADS": str(plan.threads)} if plan.threads else None
                    load = load_average()
                    limit = timeout if left is None else min(timeout, left)
                    result = run_subprocess(WORKER_MODULE, "--worker", job.to_json(), limit, env)
                    result["load_average"] = [load, load_average()]
                plan.runs[side].append(result)
                done += 1
                what = "error: " + result["error"] if "error" in result else f"{result['ms_per_iteration']:.2f} ms/it"
                log(
                    f"{log_prefix}[{done}/{total} {time.monotonic() - started:.0f}s] {plan.model} {plan.config} "
                    f"{plan.variant.name} {side} #{repeat + 1}: {what}"
                )
        entry = summarise(plan, values["data"]["batch_size"])
        entries.append(entry)
        log(f"{log_prefix}    {plan.model} {plan.config} {plan.variant.name}: full/plain {fmt(entry['ratio'], 3)}")
    return entries


def run_profile(model: str, device: torch.device, steps: tuple[int, int], timeout: float) -> dict[str, Any]:
    """The tiny config of ``model`` on the full stack with cProfile over the timed iterations, in its own process."""
    job = Job(model, "tiny", "full", str(device), Variant(), *steps, threads=THREADS["tiny"], profile=True)
    job.values = job_values(model, "tiny", Variant())
    result = run_subprocess(WORKER_MODULE, "--worker", job.to_json(), timeout, {"OMP_NUM_THREADS": "1"})
    entry = {"model": model, "config": "tiny", "experiment": EXPERIMENTS[model, "tiny"], "warmup": steps[0]}
    entry["overrides"] = list(OVERRIDES[model, "tiny"])
    if "error" in result:
        return {**entry, "error": result["error"]}
    return {**entry, **result["profile"], "ms_per_iteration_profiled": result["ms_per_iteration"]}
