"""``ganzoo.train.train`` in this process, on configs composed as ``python -m ganzoo.train`` composes them: resume
is exact, trainer settings are checked. (Every experiment: tests/cli/test_experiments.py; the entry point as a
process, DDP and the loggers: tests/cli/test_train.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ganzoo.checkpoint import load_checkpoint_file
from ganzoo.errors import ConfigError
from ganzoo.train import compose_config
from tests.builders import assert_resume_is_exact, read_rows
from tests.conftest import QUIET, SMALL_NETS, TINY

Train = Callable[..., dict[str, float]]


#: pix2pix on the tiny Fashion-MNIST's edge maps: epochs of 4 iterations (so 6 iterations cross an epoch end and a
#: learning-rate decay step), a U-Net with dropout (6 levels: 64 px).
PIX2PIX = (
    "experiment=pix2pix_fmnist", "model.n_epochs=1", "model.n_epochs_decay=1", "model.generator.num_downs=6",
    "data.image_size=64", "data.batch_size=64",
)  # fmt: skip


#: ADA from p = 0.5, adjusting it every 2 iterations by 128 / 1000 (stopping at 3 saves the controller mid-interval), and pix2pix's
#: pairs through DiffAugment: the augmentations' draws and the controller must resume exactly.
ADA = (
    "model.augment=ada",
    "model.augment_options.interval=2",
    "model.augment_options.kimg=1",
    "model.augment_options.p=0.5",
)
PIX2PIX_DIFFAUG = (*PIX2PIX, "model.augment=diffaug")


@pytest.mark.parametrize(
    ("stop_at", "extra"),
    [(3, ()), (4, ()), (3, ("trainer.limit_train_batches=2",)), (3, PIX2PIX_DIFFAUG), (3, ADA)],
    ids=["mid-epoch", "epoch-end", "short-epochs", "pix2pix-diffaug", "ada"],
)
def test_resume_equals_uninterrupted_run(
    stop_at: int, extra: tuple[str, ...], train_in_process: Train, tmp_path: Path
) -> None:
    # 256 train images, batch 64: 4 iterations per epoch (2 with the limit); 6 iterations cross an epoch
    # boundary. Checkpoints every 2 iterations, so stopping at 3 resumes from the end-of-run last.ckpt.
    # Random flips through 2 worker processes: augmentation must resume exactly too. (Under DDP:
    # tests/cli/test_train.py.)
    common = (*QUIET, *SMALL_NETS, "data.flip=true", "data.num_workers=2", *extra)
    train_in_process(tmp_path / "full", *common, "trainer.max_steps=6")
    train_in_process(tmp_path / "first", *common, f"trainer.max_steps={stop_at}")
    first = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(first)["global_step"] == stop_at
    train_in_process(tmp_path / "resumed", *common, "trainer.max_steps=6", f"ckpt_path={first}")
    assert_resume_is_exact(*(tmp_path / run / "checkpoints" / "last.ckpt" for run in ("full", "first", "resumed")))
    if extra == ADA:
        full, resumed = (
            load_checkpoint_file(tmp_path / run / "checkpoints" / "last.ckpt") for run in ("full", "resumed")
        )
        assert float(full["state_dict"]["augmentation.p"]) != 0.5  # p moved (and equals: assert_resume_is_exact)
        saved, again = full["ganzoo"]["augmentation"], resumed["ganzoo"]["augmentation"]
        assert saved.keys() == again.keys() and all(torch.equal(saved[k], again[k]) for k in saved)


def test_without_metrics_trains_without_evaluation(train_in_process: Train, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_in_process(run_dir, *QUIET, *SMALL_NETS, "~metrics")
    header, _ = read_rows(run_dir)
    assert not any(key.startswith("val/") for key in header)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt", "step_0000002.ckpt"]


#: Two iterations of small networks on small batches, without evaluation.
TWO_TINY_STEPS = ("trainer.accelerator=cpu", "~metrics", *TINY, "trainer.max_steps=2")


def test_invalid_trainer_setting_is_one_config_error(train_in_process: Train, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^the trainer settings are invalid \(.*bogus.*\): fix the trainer\.\* value"
    ):
        train_in_process(tmp_path / "run", *TWO_TINY_STEPS, "trainer.precision=bogus")


def test_trainer_without_progress_bar_drops_the_configured_one(
    train_in_process: Train, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # callbacks.progress_bar is configured; enable_progress_bar=false removes it (Lightning refuses the pair).
    overrides = (*TWO_TINY_STEPS, "+trainer.enable_progress_bar=false", "callbacks.model_summary=null")
    assert compose_config(list(overrides)).callbacks.progress_bar is not None
    train_in_process(tmp_path / "run", *overrides)
    output = capsys.readouterr()
    # With the bar, its final state is printed once: `train ━━━━ 2/2 0:00:03 • 0:00:00 1.97 it/s`.
    assert "2/2" not in output.out + output.err
    assert load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 2
