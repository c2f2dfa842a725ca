"""EvaluationCallback in real tiny fits on tiny Fashion-MNIST files (16 px), measured by a small evaluator
classifier trained once for the module: when it evaluates, what it logs and publishes, ``best()``, its state
across a resume, the progress bar's monitor value, and its one-line configuration errors."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.callbacks import EvaluationCallback, GANCheckpoint, IterationProgressBar
from ganzoo.data.fashion_mnist import FashionMNISTDataModule
from ganzoo.errors import ConfigError
from ganzoo.loggers import CSVLogger
from ganzoo.metrics import ClassifierFeatures, Evaluation
from tests.builders import quiet_trainer, read_rows, tiny_dcgan
from tests.data.writers import write_fashion_mnist

pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")

MONITOR = "val/fid_fmnist"


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 train and 32 test Fashion-MNIST images in torchvision's layout."""
    root = tmp_path_factory.mktemp("fashion")
    write_fashion_mnist(root, n_train=64, n_test=32)
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the module's tests: the evaluator classifier is trained by the first one and loaded after."""
    return tmp_path_factory.mktemp("cache")


def fashion(data_dir: Path) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(
        str(data_dir), image_size=16, channels=1, system_dir=None, download=False, batch_size=8, num_workers=0
    )


def evaluation(cache_dir: Path) -> Evaluation:
    """FID, KID, IS, class statistics and precision/recall/density/coverage of 8 samples against 16 val images,
    by a 4-channel classifier trained for one epoch."""
    extractor = ClassifierFeatures("fmnist", epochs=1, batch_size=32, width=4, num_features=8)
    return Evaluation(
        extractor, metrics=["fid", "kid", "is", "classes", "prdc"], num_samples=8, batch_size=8, real_split="val",
        num_real=16, cache_dir=str(cache_dir), kid_subsets=2, kid_subset_size=4, is_splits=2,
    )  # fmt: skip


def fit(
    root: Path, data_dir: Path, callbacks: list[Callback], ckpt_path: str | None = None, **settings: Any
) -> L.Trainer:
    torch.manual_seed(0)
    trainer = quiet_trainer(root, callbacks=callbacks, **settings)
    trainer.fit(tiny_dcgan(lr=0.01), datamodule=fashion(data_dir), ckpt_path=ckpt_path)
    return trainer


def test_evaluates_at_start_every_n_steps_and_end_and_logs_every_value(
    tmp_path: Path, fashion_dir: Path, cache_dir: Path
) -> None:
    evaluate = EvaluationCallback(evaluation(cache_dir), every_n_steps=2, at_start=True, monitor=MONITOR)
    trainer = fit(tmp_path, fashion_dir, [evaluate], max_steps=3, logger=CSVLogger(str(tmp_path)))
    assert [step for step, _ in evaluate.history] == [0, 2, 3]
    keys = set(evaluate.evaluation.output_keys()) - {"val/class_accuracy_fmnist"}  # an unconditional model
    assert all(set(values) == keys for _, values in evaluate.history)
    assert all(math.isfinite(values[MONITOR]) for _, values in evaluate.history)
    # Every evaluation is one logged row at its step; the classifier's accuracy is logged once, at the start.
    _, rows = read_rows(tmp_path)
    assert [(int(r["step"]), float(r[MONITOR])) for r in rows if r.get(MONITOR)] == [
        (step, pytest.approx(values[MONITOR], rel=1e-6)) for step, values in evaluate.history
    ]
    assert [int(r["step"]) for r in rows if r.get("evaluator/accuracy_fmnist")] == [0]
    # The latest values are where ModelCheckpoint(monitor=...) looks for them.
    assert float(trainer.callback_metrics[MONITOR]) == pytest.approx(evaluate.history[-1][1][MONITOR])
    # How the numbers were measured is in the run's hyperparameters.
    protocol = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())["evaluation_protocol"]
    assert protocol == evaluate.evaluation.protocol()
    assert protocol["extractor_identity"].startswith("classifier_") and protocol["resize"] == "none"
    assert (protocol["num_generated"], protocol["real_split"], protocol["num_real"]) == (8, "val", 16)
    assert (protocol["kid_subset_size"], protocol["precision_recall_k"], protocol["density_coverage_k"]) == (4, 3, 5)


def test_at_start_and_every_n_steps_choose_the_steps(tmp_path: Path, fashion_dir: Path, cache_dir: Path) -> None:
    late = EvaluationCallback(evaluation(cache_dir), every_n_steps=2, at_start=False, monitor=MONITOR)
    fit(tmp_path / "late", fashion_dir, [late], max_steps=3)
    assert [step for step, _ in late.history] == [2, 3]
    ends = EvaluationCallback(evaluation(cache_dir), every_n_steps=0, at_start=True, monitor=MONITOR)
    fit(tmp_path / "ends", fashion_dir, [ends], max_steps=3)
    assert [step for step, _ in ends.history] == [0, 3]


def test_best_is_the_best_trained_step_in_the_direction_of_mode(
    tmp_path: Path, fashion_dir: Path, cache_dir: Path
) -> None:
    lowest = EvaluationCallback(evaluation(cache_dir), every_n_steps=1, monitor=MONITOR, mode="min")
    fit(tmp_path, fashion_dir, [lowest], max_steps=3)
    scores = [(step, values[MONITOR]) for step, values in lowest.history]
    assert [step for step, _ in scores] == [0, 1, 2, 3]
    # The untrained model (step 0) is a baseline, never the best.
    assert lowest.best() == min(scores[1:], key=lambda item: item[1])
    # A history (as a checkpoint restores it) whose lowest value is the baseline's.
    history = [(0, {MONITOR: 0.5}), (1, {MONITOR: 3.0}), (2, {MONITOR: 2.0}), (3, {MONITOR: 4.0})]
    for mode, best in (("min", (2, 2.0)), ("max", (3, 4.0))):
        restored = EvaluationCallback(evaluation(cache_dir), monitor=MONITOR, mode=mode)
        restored.load_state_dict({"history": history})
        assert restored.best() == best
    assert EvaluationCallback(evaluation(cache_dir), monitor=None).best() is None


def test_a_resumed_run_keeps_the_history_of_the_checkpoint(tmp_path: Path, fashion_dir: Path, cache_dir: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    first = EvaluationCallback(evaluation(cache_dir), every_n_steps=2, monitor=MONITOR)
    saving = GANCheckpoint(dirpath=checkpoints, every_n_train_steps=0, save_top_k=0, save_last=True)
    fit(tmp_path, fashion_dir, [first, saving], max_steps=2, enable_checkpointing=True)
    resumed = EvaluationCallback(evaluation(cache_dir), every_n_steps=2, monitor=MONITOR)
    fit(tmp_path, fashion_dir, [resumed], ckpt_path=str(checkpoints / "last.ckpt"), max_steps=3)
    # No evaluation at the start of a resumed run (step 2 was evaluated before the save); the end is.
    assert [step for step, _ in resumed.history] == [0, 2, 3]
    assert resumed.history[:2] == first.history


def test_the_progress_bar_shows_the_latest_monitor_value(tmp_path: Path, fashion_dir: Path, cache_dir: Path) -> None:
    evaluate = EvaluationCallback(evaluation(cache_dir), every_n_steps=0, monitor=MONITOR)
    output = io.StringIO()
    bar = IterationProgressBar(console_kwargs={"file": output, "force_terminal": False, "width": 100})
    fit(tmp_path, fashion_dir, [evaluate, bar], max_steps=2, enable_progress_bar=True)
    shown = re.search(r"fid_fmnist (\S+)", output.getvalue())
    assert shown is not None, output.getvalue()
    assert shown.group(1) == f"{evaluate.history[-1][1][MONITOR]:.4g}"


def test_configuration_errors_are_one_line(tmp_path: Path, fashion_dir: Path, cache_dir: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"metrics\.monitor=val/fid_inception is not computed by this evaluation: pick one of \['val/fid_fmnist'",
    ):
        EvaluationCallback(evaluation(cache_dir), monitor="val/fid_inception")
    with pytest.raises(ConfigError, match=r"metrics\.mode='lowest': use min \(FID, KID\) or max \(IS\)"):
        EvaluationCallback(evaluation(cache_dir), monitor=MONITOR, mode="lowest")
    # Real images come from the run's DataModule: a bare DataLoader has none to compare with.
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[EvaluationCallback(evaluation(cache_dir))])
    with pytest.raises(ConfigError, match="evaluation needs the run's DataModule"):
        trainer.fit(tiny_dcgan(), DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=4))
