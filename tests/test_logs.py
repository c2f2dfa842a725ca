"""What a user reads from a run: csv/metrics.csv (one step numbering, continued on resume), the progress bar, and a
console without Lightning's noise. Real ``python -m ganzoo.train`` runs on tiny Fashion-MNIST."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ganzoo.checkpoint import load_checkpoint_file
from tests.conftest import QUIET, cli_env, run_cli

BAR_ON = "callbacks.progress_bar={_target_:ganzoo.callbacks.IterationProgressBar}"


def read_rows(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def steps_of(rows: list[dict[str, str]], key: str) -> list[int]:
    return [int(r["step"]) for r in rows if r.get(key)]


def test_run_shorter_than_the_log_interval_has_its_metrics_file_and_no_bar(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = ["~metrics", "trainer.max_steps=2", "trainer.log_every_n_steps=50", "callbacks.progress_bar=null"]
    proc = run_cli("train", *QUIET, *overrides, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    _, rows = read_rows(run_dir)
    # The last iteration is logged although it is not on the log_every_n_steps grid.
    assert steps_of(rows, "train/loss_g") == [2]
    output = proc.stdout + proc.stderr
    assert not re.search(r"\b2/2\b", output) and "━" not in output, output  # no bar, not even Lightning's default


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
    proc = run_cli("train", *QUIET, *extra, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))

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


def test_resume_appends_to_metrics_file(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = cli_env(tiny_data_dir)
    # First part: 3 iterations without evaluation; checkpoints at 2 and (last.ckpt) 3.
    run_cli("train", *QUIET, "~metrics", "trainer.max_steps=3", f"hydra.run.dir={run_dir}", env=env)
    _, first = read_rows(run_dir)
    assert steps_of(first, "train/loss_g") == [1, 2, 3]
    # The run died after logging step 3 but before saving it: the newest checkpoint is step 2.
    (run_dir / "checkpoints" / "last.ckpt").unlink()

    # Second part, resumed in the same directory, with evaluation (new columns): up to step 4.
    proc = run_cli("train", *QUIET, "trainer.max_steps=4", "ckpt_path=last", f"hydra.run.dir={run_dir}", env=env)
    assert "resuming from" in proc.stdout + proc.stderr
    header, rows = read_rows(run_dir)
    # Rows up to the resumed step stay, the abandoned step 3 is trained and logged again, once.
    assert steps_of(rows, "train/loss_g") == [1, 2, 3, 4]
    assert [r["train/loss_g"] for r in rows if r["step"] in ("1", "2") and r.get("train/loss_g")] == [
        r["train/loss_g"] for r in first if r["step"] in ("1", "2")
    ]
    assert steps_of(rows, "val/fid_fmnist") == [4]
    assert {"train/loss_g", "val/fid_fmnist", "step"} <= set(header)  # the header is the union of both parts
    assert header == sorted(header)


def test_run_from_scratch_in_an_old_run_dir_starts_the_file_over(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = cli_env(tiny_data_dir)
    run_cli("train", *QUIET, "~metrics", "trainer.max_steps=3", f"hydra.run.dir={run_dir}", env=env)
    run_cli("train", *QUIET, "~metrics", "trainer.max_steps=2", f"hydra.run.dir={run_dir}", env=env)
    _, rows = read_rows(run_dir)
    assert steps_of(rows, "train/loss_g") == [1, 2]
