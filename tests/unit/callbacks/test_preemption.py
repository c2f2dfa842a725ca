"""PreemptionCheckpoint in a real tiny fit: a SIGTERM to this process saves ``last.ckpt`` after the iteration and
exits 143, and the previous SIGTERM handler is back afterwards (a real process killed: tests/cli)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest

from ganzoo.callbacks import PreemptionCheckpoint
from ganzoo.checkpoint import load_checkpoint_file
from tests.conftest import fit_tiny_dcgan

# Checkpoints of manual-optimization modules hold the state after the step, as ganzoo intends.
pytestmark = pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")


class SendSignal(L.Callback):
    """Sends SIGTERM to this process at the end of iteration ``at_step``."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_in_process_saves_exits_143_and_restores_the_handler(tmp_path: Path) -> None:
    received = []
    outer = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))  # never kill pytest
    try:
        before = signal.getsignal(signal.SIGTERM)
        with pytest.raises(SystemExit) as stopped:
            fit_tiny_dcgan(tmp_path, 50, [PreemptionCheckpoint(), SendSignal(at_step=1)])
        assert stopped.value.code == 143
        # The signal arrived after the check of step 1: step 2 is saved as last.ckpt, before the interval save.
        assert sorted(os.listdir(tmp_path / "checkpoints")) == ["last.ckpt"]
        assert load_checkpoint_file(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2
        assert signal.getsignal(signal.SIGTERM) == before and not received
    finally:
        signal.signal(signal.SIGTERM, outer)
