"""``make gpu-check`` (``python -m bench.gpu_check``): one line and exit 2 without a GPU; the whole check's plumbing
on the CPU through its development flag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, cli_env


def _gpu_check(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", *args],
        cwd=REPO,
        env=cli_env(PYTHONPATH=f"{REPO}:{REPO / 'src'}"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_a_gpu_it_prints_one_error_line_and_exits_2() -> None:
    proc = _gpu_check(timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: make gpu-check needs a CUDA GPU (torch.cuda.is_available() is False); "), lines[
        0
    ]
    assert "make bench" in lines[0]


@pytest.mark.slow
def test_allow_cpu_runs_every_part_and_writes_the_results(tmp_path: Path) -> None:
    """``--allow-cpu``: host syncs, throughput, evaluation and DDP each run (tiny networks, a few iterations) and
    land in gpu.json / gpu.md with the machine, versions, commit and goals."""
    out = tmp_path / "gpu.json"
    proc = _gpu_check("--allow-cpu", "--models", "dcgan", "--budget", "400", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["allow_cpu"] is True
    assert report["machine"]["torch"] == torch.__version__
    assert report["commit"]
    assert set(report["parts"]) == {"host_syncs", "throughput", "evaluation", "ddp"}

    (sync,) = report["parts"]["host_syncs"]
    assert sync["status"] == "pass", sync
    assert sync["watched"] > 0 and sync["violation_count"] == 0

    (throughput,) = report["parts"]["throughput"]
    assert throughput["status"] == "ok", throughput
    assert (throughput["model"], throughput["config"], throughput["variant"]) == ("dcgan", "tiny", "fp32")
    assert throughput["full"]["images_per_s_median"] > 0 and throughput["plain"]["images_per_s_median"] > 0
    assert throughput["ratio"] > 0

    (evaluation,) = report["parts"]["evaluation"]
    assert evaluation["status"] == "ok", evaluation
    assert evaluation["image_size"] == 32 and evaluation["images_per_s"] > 0
    assert evaluation["setup_warm_s"] >= 0 and "weights" in evaluation["weights"]

    (ddp,) = report["parts"]["ddp"]
    assert ddp["status"] == "ok", ddp
    assert (ddp["strategy"], ddp["backend"], ddp["world_size"]) == ("DDPStrategy", "gloo", 1)
    assert ddp["losses_finite"] and "last.ckpt" in ddp["checkpoints"]

    goals = {g["goal"]: g for g in report["goals"]}
    assert any(goal.startswith("evaluation dcgan 32 px") for goal in goals)
    assert all(g["met"] in (True, False, None) for g in goals.values())

    table = out.with_suffix(".md").read_text()
    for heading in (
        "| goal | value | met |",
        "1. Host syncs",
        "2. Training throughput",
        "3. FID/IS evaluation",
        "4. DDP",
    ):
        assert heading in table
    assert "--allow-cpu" in table
