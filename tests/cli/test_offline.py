"""What the entry points say when a file they would download cannot be downloaded: one line, fast, the remedy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ganzoo.data.download import DATASETS
from ganzoo.metrics.inception import INCEPTION_URL
from tests.conftest import QUIET, cli_env, run_cli
from tests.data.checks import network_reachable


def test_download_fails_fast_with_one_line(tmp_path: Path) -> None:
    if network_reachable("efrosgans.eecs.berkeley.edu") or network_reachable("github.com"):
        pytest.skip("the network is reachable: the download would run")
    start = time.monotonic()
    proc = run_cli("data.download", "horse2zebra", "--data-dir", str(tmp_path), timeout=60, check=False)
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: could not download horse2zebra from http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip ("
    )
    assert last.endswith(f"so that {tmp_path}/horse2zebra/trainA, trainB, testA and testB exist")
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing half-written left behind
    unknown = run_cli("data.download", "horse3zebra", timeout=60, check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines()[-1] == (
        f"error: unknown dataset 'horse3zebra': choose one of {', '.join(DATASETS)}"
    )
    # A pix2pix set: its tar.gz, and the paired layout it unpacks to.
    pix2pix = run_cli("data.download", "facades", "--data-dir", str(tmp_path), timeout=60, check=False)
    assert pix2pix.returncode == 1
    last = pix2pix.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: could not download facades from http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz ("
    )
    assert last.endswith(f"so that {tmp_path}/facades/train and val (or test) exist")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_inception_metrics_without_weights_fail_fast_with_the_remedy(tiny_data_dir: Path, tmp_path: Path) -> None:
    if network_reachable("github.com"):
        pytest.skip("this machine can download the weights, so there is no offline failure to see")
    env = cli_env(tiny_data_dir, TORCH_HOME=str(tmp_path / "torch"))
    start = time.monotonic()
    proc = run_cli(
        "train", "metrics=inception", *QUIET, f"hydra.run.dir={tmp_path / 'run'}", env=env, timeout=120, check=False
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    expected_path = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert error.startswith("error: Inception weights for FID/IS/KID are missing (the download failed")
    assert INCEPTION_URL in error and str(expected_path) in error and "weights_path" in error
    assert elapsed < 60, f"took {elapsed:.0f}s"
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training
