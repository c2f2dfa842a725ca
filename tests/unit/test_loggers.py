"""The W&B logger when the server does not answer: the run is logged offline, with the command that uploads it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import wandb

from ganzoo.loggers import wandb_logger
from tests.conftest import wandb_records


def test_wandb_logs_offline_when_the_server_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in [name for name in os.environ if name.startswith("WANDB_")] + ["WANDB_MODE"]:
        monkeypatch.delenv(name, raising=False)  # also undoes the WANDB_MODE Lightning sets for offline runs
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # credentials, but a server that refuses connections
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / "wandb" / name.lower()))
    logger = wandb_logger(save_dir=str(tmp_path / "run"), name="unreachable", init_timeout=2)
    with caplog.at_level(logging.WARNING, logger="ganzoo.loggers"):
        run = logger.experiment
    try:
        assert run.offline
        run.log({"train/loss_d": 1.0})
    finally:
        wandb.finish()
        wandb.teardown()
    assert "could not reach the server" in caplog.text and "wandb sync" in caplog.text
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    records = wandb_records(next(offline.glob("run-*.wandb")))
    assert [r.WhichOneof("record_type") for r in records].count("exit") == 1
