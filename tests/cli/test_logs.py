"""What a user reads from a run: csv/metrics.csv (one step numbering), the progress bar, and a console without
Lightning's noise, from a real ``python -m ganzoo.train`` run on tiny Fashion-MNIST (the metrics file of short,
resumed and restarted runs: tests/unit/callbacks/test_metrics_log.py)."""

from __future__ import annotations

import re
from pathlib import Path

from ganzoo.checkpoint import load_checkpoint_file
from tests.builders import read_rows, steps_of
from tests.conftest import QUIET, SMALL_NETS, cli_env, run_cli

BAR_ON = "callbacks.progress_bar={_target_:ganzoo.callbacks.IterationProgressBar}"


def test_bar_numbering_and_quiet_console(tiny_data_dir: Path, tmp_path: Path) -> None:
    # debug=smoke: 3 iterations, a row every iteration, evaluation (classifier FID) at 0, 2 and 3, checkpoint at 2.
    # The bar, the model summary and pinned memory switched on, to show that their noise is gone too.
    run_dir = tmp_path / "run"
    extra = [
        BAR_ON,
        "callbacks.model_summary={_target_:lightning.pytorch.callbacks.RichModelSummary,max_depth:1}",
        "trainer.enable_model_summary=true",
        "data.pin_memory=true",
    ]
    proc = run_cli("train", *QUIET, *SMALL_NETS, *extra, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))

    header, rows = read_rows(run_dir)
    assert "step" in header and "train/loss_g" in header and "val/fid_fmnist" in header
    # "step N" = after N generator updates, in training rows, evaluation rows and checkpoint names alike.
    assert steps_of(rows, "train/loss_g") == [1, 2, 3]
    assert steps_of(rows, "val/fid_fmnist") == [0, 2, 3]
    assert load_checkpoint_file(run_dir / "checkpoints" / "step_0000002.ckpt")["global_step"] == 2

    # The bar (rich prints its final state once when the output is not a terminal): iterations against
    # trainer.max_steps, the losses the model shows and the latest FID.
    bar = next(line for line in proc.stdout.splitlines() if line.startswith("train "))
    assert re.search(r"\b3/3\b", bar), bar
    assert "loss_d " in proc.stdout and "loss_g " in proc.stdout and "fid_fmnist " in proc.stdout
    assert "Epoch 0/-2" not in proc.stdout

    output = proc.stdout + proc.stderr
    assert output.count("Trainable params") == 1  # one model summary
    for noise in (
        "on_after_batch_transfer",
        "pin_memory",
        "Trainer already configured with model summary",
        "TPU available",
        "GPU available: False",
        "Seed set to",
        "`Trainer.fit` stopped",
        "litlogger",
    ):
        assert noise not in output, f"{noise!r} in:\n{output}"
