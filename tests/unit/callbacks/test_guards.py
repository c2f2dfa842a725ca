"""NonFiniteGuard: a NaN loss stops the run naming its step and the last good checkpoint, and no checkpoint holding
NaN/inf tensors is written (in real tiny fits; the one error line of ``python -m ganzoo.train``: tests/cli)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ganzoo.callbacks import NonFiniteError, NonFiniteGuard
from ganzoo.checkpoint import save_atomic
from tests.conftest import QUIET, TINY, fit_tiny_dcgan
from tests.faults import PoisonWeights

pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


def test_nan_loss_between_checks_is_caught_before_the_next_save_and_named(
    train_in_process: Callable[..., dict[str, float]], tmp_path: Path
) -> None:
    # The guard reads losses from the device only where the run does something with its state: here no log step
    # (every 10) and no sheet comes before the checkpoint at step 5, so the NaN of step 4 is seen at that save.
    run_dir = tmp_path / "run"
    overrides = (
        *QUIET,
        *TINY,
        "~metrics",
        "trainer.max_steps=12",
        "trainer.log_every_n_steps=10",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        "callbacks.sample_grid.every_n_steps=0",
        "callbacks.translation_grid.every_n_steps=0",
        "+callbacks.poison._target_=tests.faults.PoisonWeights",
        "+callbacks.poison.at_step=3",
    )
    with pytest.raises(NonFiniteError) as error:
        train_in_process(run_dir, *overrides)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("non-finite loss at step 4, found at step 5: train/loss_"), message
    assert "no checkpoint was saved before it" in message
    assert not (run_dir / "checkpoints").exists() or not os.listdir(run_dir / "checkpoints")


def test_guard_refuses_to_save_non_finite_weights_before_writing(tmp_path: Path) -> None:
    # Poisoned after the losses of step 2 were checked, at a checkpoint step: the save itself is refused.
    with pytest.raises(NonFiniteError, match=r"refusing to save a checkpoint at step 2: state_dict\.generator\."):
        fit_tiny_dcgan(tmp_path, 6, [NonFiniteGuard(), PoisonWeights(at_step=2)])
    assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")


def test_guard_checks_optimizer_state_and_names_the_last_good_checkpoint(tmp_path: Path) -> None:
    save_atomic({"global_step": 6}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(
        world_size=1, global_step=7, checkpoint_callbacks=[SimpleNamespace(dirpath=str(tmp_path))], default_root_dir=""
    )
    module = SimpleNamespace(device=torch.device("cpu"))
    guard = NonFiniteGuard()
    good = {"state_dict": {"w": torch.ones(3)}, "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}]}
    guard.on_save_checkpoint(trainer, module, good)
    bad = {
        "state_dict": {"w": torch.ones(3)},
        "optimizer_states": [{"state": {0: {"exp_avg_sq": torch.tensor([float("inf")])}}}],
    }
    with pytest.raises(NonFiniteError) as error:
        guard.on_save_checkpoint(trainer, module, bad)
    message = str(error.value)
    assert message.startswith("refusing to save a checkpoint at step 7: optimizer_states[0].0.exp_avg_sq holds NaN")
    assert f"the last good checkpoint is {tmp_path / 'last.ckpt'} (step 6)" in message
    NonFiniteGuard(check_checkpoints=False).on_save_checkpoint(trainer, module, bad)
