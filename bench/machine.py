"""The machine and the code a bench ran on: CPU and GPU names, versions, the checkout's commit, the load average.

torch is imported only by :func:`machine_info`, so that drivers which do not train (``python -m
bench.experiments``) can describe the code without loading it.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import REPO

if TYPE_CHECKING:
    import torch


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what ``platform`` knows)."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    return " ".join(match.group(1).split()) if match else platform.processor() or platform.machine()


def git_commit(short: bool = False, ignore: Sequence[str] = ()) -> tuple[str, bool] | None:
    """(HEAD's commit hash, whether tracked files differ from it, not counting the paths ``ignore``), or None
    outside a git checkout or without git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", *(["--short"] if short else []), "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{path}" for path in ignore)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:
        return None
    return head.stdout.strip(), bool(status.stdout.strip())


def commit(short: bool = False) -> str:
    """The checkout's commit, marked when tracked files differ from it; 'unknown ...' outside a git checkout."""
    state = git_commit(short)
    if state is None:
        return "unknown (not a git checkout, or no git)"
    head, dirty = state
    return head + (" with uncommitted changes" if dirty else "")


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """The date, commit, versions, CPU (and GPU) of a run on ``device``."""
    import torch

    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        info["lightning"] = importlib.metadata.version("lightning")
    info["cpu"] = cpu_name()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
