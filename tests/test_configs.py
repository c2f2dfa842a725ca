"""Every dataset name a command knows has a config: real Hydra composition of the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch import LightningDataModule

from ganzoo.cli import CONFIG_DIR
from ganzoo.data.download import CYCLEGAN_DATASETS


@pytest.mark.parametrize("name", CYCLEGAN_DATASETS)
def test_every_downloadable_dataset_has_a_data_config(name: str, tmp_path: Path, monkeypatch) -> None:
    """``data=<name>`` composes for every name ``python -m ganzoo.data.download`` fetches, points at the folder
    the download writes, and builds its DataModule (nothing is read from disk before ``setup``)."""
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="train", overrides=[f"data={name}"])
    assert cfg.data.name == name
    # The download puts <name> into <data_dir>/<name>; a config may read a subfolder of it (mini_colorization/train).
    data_dir = Path(cfg.data.data_dir)
    assert data_dir == tmp_path / name or data_dir.parent == tmp_path / name
    # None of these datasets is labelled, so no evaluator classifier can be trained on them.
    assert cfg.data.num_classes == 0
    assert cfg.metrics.evaluation.extractor._target_.endswith("InceptionFeatures")
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, LightningDataModule)
    assert not any(tmp_path.iterdir())  # building it read or wrote nothing
