"""Every option of every config group composes with real Hydra and builds what it describes, in-process.

The shipped configs are the user interface: a typo in a ``_target_``, an interpolation to a key that moved or a
value a class refuses shows up here in seconds, not in a subprocess run or on a user's cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch import Callback, LightningDataModule
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from ganzoo.cli import CONFIG_DIR
from ganzoo.metrics.evaluation import instantiate_for_data
from ganzoo.models.base import GANModule

CONF = Path(CONFIG_DIR)
# Groups whose options select what a run builds; hydra/ holds Hydra's own settings (composed in every case).
GROUPS = (
    "callbacks",
    "data",
    "debug",
    "experiment",
    "hparams_search",
    "logger",
    "metrics",
    "model",
    "paths",
    "trainer",
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [(group, option) for group in GROUPS for option in options(group)]


def test_every_group_is_covered() -> None:
    """A new config group must be added to GROUPS (or be Hydra's own), so nothing ships untested. ``augment`` holds
    the keys every model config includes (``model.augment``): composed with every model option."""
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    assert groups - set(GROUPS) == {"hydra", "augment"}
    assert all("/augment/default@" in (CONF / "model" / f"{model}.yaml").read_text() for model in options("model"))
    assert len(CASES) >= 40


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_inception_weights: Path) -> dict[str, Any]:
    """Data and caches under ``tmp_path``; W&B offline in ``tmp_path``; Inception weights from a local file."""
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path / "data"))
    for key in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return {"tmp": tmp_path, "inception": random_inception_weights}


def compose_train(overrides: list[str], tmp: Path) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={tmp / 'run'}"], return_hydra_config=True)


def build_run(cfg: DictConfig, inception: Path) -> dict[str, Any]:
    """What ``ganzoo.train.train`` builds before ``fit``, without reading any data: every ``_target_`` resolves
    and every class accepts its arguments. A GPU trainer is built for the CPU (its settings are checked as well)."""
    if OmegaConf.select(cfg, "metrics.evaluation.extractor.weights_path", default="missing") is None:
        cfg.metrics.evaluation.extractor.weights_path = str(inception)
    datamodule = instantiate(cfg.data)
    with torch.device("meta"):  # the arguments are what is checked; weights of full-size nets take seconds
        model = instantiate(cfg.model, _convert_="all")
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]
    metrics = instantiate_for_data(cfg.metrics, datamodule, training=True) if cfg.get("metrics") else None
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer_cfg.get("accelerator") not in (None, "auto", "cpu"):
        trainer_cfg["accelerator"] = "cpu"
    if trainer_cfg.get("devices") == -1:
        trainer_cfg["devices"] = 2
    trainer_cfg.pop("num_nodes", None)  # more than one machine is checked by the launcher, not here
    trainer = instantiate(trainer_cfg, callbacks=[], logger=False, enable_progress_bar=False)
    return {
        "data": datamodule,
        "model": model,
        "callbacks": callbacks,
        "loggers": loggers,
        "metrics": metrics,
        "trainer": trainer,
    }


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_builds(group: str, option: str, isolated: dict[str, Any]) -> None:
    tmp: Path = isolated["tmp"]
    cfg = compose_train([f"{group}={option}"], tmp)
    # The option was taken, and every value resolves (no interpolation points at a key that is gone).
    assert cfg.hydra.runtime.choices[group] == option
    with open_dict(cfg):
        del cfg.hydra  # Hydra's own node: resolved by the launcher per job (job numbers, sweep dirs)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    built = build_run(cfg, isolated["inception"])
    assert isinstance(built["data"], LightningDataModule)
    assert isinstance(built["model"], GANModule)
    assert all(isinstance(c, Callback) for c in built["callbacks"]), built["callbacks"]
    assert all(isinstance(lg, Logger) for lg in built["loggers"]), built["loggers"]
    assert isinstance(built["trainer"], L.Trainer)
    # Building read or wrote no data: datasets are only touched in prepare_data/setup.
    assert not (tmp / "data").exists()
