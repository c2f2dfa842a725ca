"""Real Hydra composition of the shipped configs: every dataset name a command knows has a config, and the callbacks
run in the order their config gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from lightning.pytorch import LightningDataModule
from omegaconf import OmegaConf

from ganzoo.callbacks import EvaluationCallback, NonFiniteGuard, PreemptionCheckpoint, RunSummary
from ganzoo.cli import CONFIG_DIR, instantiate_group
from ganzoo.data.download import DATASETS
from ganzoo.metrics.evaluation import instantiate_for_data
from ganzoo.train import compose_config

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


#: The official direction of each pix2pix set whose input is its B side (the rest translate A to B).
BTOA = {"facades", "cityscapes"}
#: The DataModule that reads each layout of the download table.
LAYOUT_MODULES = {
    "paired": "ganzoo.data.paired.PairedImageDataModule",
    "unpaired": "ganzoo.data.unpaired.UnpairedImageFolderDataModule",
    "images": "ganzoo.data.folders.ImageFolderDataModule",
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_downloadable_dataset_has_a_data_config(name: str, tmp_path: Path, monkeypatch) -> None:
    """``data=<name>`` composes for every name ``python -m ganzoo.data.download`` fetches, points at the folder
    the download writes, reads the layout the download table announces, and builds its DataModule (nothing is
    read from disk before ``setup``)."""
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
    dataset = DATASETS[name]
    assert cfg.data._target_ == LAYOUT_MODULES[dataset.layout]
    if dataset.layout == "paired":
        assert cfg.data.direction == ("BtoA" if name in BTOA else "AtoB")
    # The config's comment says how to get the data.
    comment = (Path(CONFIG_DIR) / "data" / f"{name}.yaml").read_text()
    assert f"python -m ganzoo.data.download {name}`" in comment
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, LightningDataModule)
    if dataset.layout != "images":
        assert datamodule.paired == (dataset.layout == "paired")
    assert not any(tmp_path.iterdir())  # building it read or wrote nothing


def test_default_callbacks_are_built_in_config_order_guard_and_preemption_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``ganzoo.train`` hands the trainer, before leaving out what does not apply: the entries of
    conf/callbacks/default.yaml in their order, the metrics group's evaluation at its ``evaluation`` place."""
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path / "data"))
    cfg = compose_config([], output_dir=str(tmp_path / "run"))
    evaluation = instantiate_for_data(cfg.metrics, instantiate(cfg.data), training=True)
    callbacks = instantiate_group(cfg.callbacks, built={"evaluation": evaluation})
    assert isinstance(callbacks[0], NonFiniteGuard)
    assert isinstance(callbacks[1], PreemptionCheckpoint)
    assert callbacks[2] is evaluation and isinstance(evaluation, EvaluationCallback)
    # The rest follows the file: one callback per entry, each of its entry's class.
    entries = [entry for entry in cfg.callbacks.values() if entry is not None]
    assert len(callbacks) == len(entries)
    assert [type(cb) for cb in callbacks[3:]] == [get_class(entry._target_) for entry in entries[3:]]
    assert isinstance(callbacks[-1], RunSummary)


def test_without_metrics_there_is_no_evaluation(tmp_path: Path) -> None:
    cfg = compose_config(["~metrics"], output_dir=str(tmp_path / "run"))
    callbacks = instantiate_group(cfg.callbacks, built={"evaluation": None})
    assert isinstance(callbacks[0], NonFiniteGuard) and isinstance(callbacks[1], PreemptionCheckpoint)
    assert not any(isinstance(cb, EvaluationCallback) for cb in callbacks)


def test_evaluation_place_null_switches_it_off_and_a_group_without_it_puts_it_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path / "data"))
    cfg = compose_config(["callbacks.evaluation=null"], output_dir=str(tmp_path / "run"))
    evaluation = instantiate_for_data(cfg.metrics, instantiate(cfg.data), training=True)
    assert evaluation not in instantiate_group(cfg.callbacks, built={"evaluation": evaluation})
    # A callbacks group of the user's own, without an `evaluation` place: the metrics group still evaluates.
    own = OmegaConf.create({"guard": {"_target_": "ganzoo.callbacks.NonFiniteGuard"}})
    callbacks = instantiate_group(own, built={"evaluation": evaluation})
    assert callbacks[0] is evaluation and isinstance(callbacks[1], NonFiniteGuard) and len(callbacks) == 2


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_keeps_the_guard_preemption_and_evaluation_first(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config([f"experiment={experiment}"], output_dir=str(tmp_path / "run"))
    assert list(cfg.callbacks)[:3] == ["nonfinite_guard", "preemption", "evaluation"]


def test_a_users_experiment_adding_callbacks_keeps_guard_and_preemption_first(tmp_path: Path) -> None:
    """A callback added by a user's experiment (their own config folder on top of the package's) comes after the
    shipped ones; changing a shipped entry leaves it in its place."""
    folder = tmp_path / "my_conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "with_lr_monitor.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n"
        "  - dcgan_fmnist\n"
        "callbacks:\n"
        "  lr_monitor:\n"
        "    _target_: lightning.pytorch.callbacks.LearningRateMonitor\n"
        "  sample_grid:\n"
        "    every_n_steps: 10\n"
    )
    overrides = ["experiment=with_lr_monitor", f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"]
    cfg = compose_config(overrides, output_dir=str(tmp_path / "run"))
    assert cfg.callbacks.lr_monitor and cfg.callbacks.sample_grid.every_n_steps == 10  # the experiment was applied
    names = list(cfg.callbacks)
    assert names[:3] == ["nonfinite_guard", "preemption", "evaluation"]
    assert names[-1] == "lr_monitor"
    assert names.index("sample_grid") == list(compose_config([], output_dir="unused").callbacks).index("sample_grid")
    callbacks = instantiate_group(cfg.callbacks, built={"evaluation": None})
    assert isinstance(callbacks[0], NonFiniteGuard) and isinstance(callbacks[1], PreemptionCheckpoint)
    assert type(callbacks[-1]).__name__ == "LearningRateMonitor"


def test_cyclegan_takes_the_unet_generator_as_docs_pix2pix_says(tmp_path: Path) -> None:
    """The official CycleGAN option --netG unet_256, spelled as docs/pix2pix.md spells it."""
    import torch

    overrides = [
        "model=cyclegan", "data=fmnist_domains", "model.generator._target_=ganzoo.nets.unet.UnetGenerator",
        "~model.generator.n_blocks", "~model.generator.upsample", "+model.generator.num_downs=5",
    ]  # fmt: skip
    model = instantiate(compose_config(overrides, output_dir=str(tmp_path)).model)
    generator = model.generator_a2b
    assert type(generator).__name__ == "UnetGenerator" and generator.num_downs == 5
    assert generator.norm == "instance" and not generator.use_dropout  # CycleGAN's own norm, no dropout
    assert model.translate(torch.zeros(2, 1, 32, 32), "BtoA").shape == (2, 1, 32, 32)
