"""Hydra sweeps from the command line: multiruns (one process and DDP), Optuna, the submitit launchers, and
one finished W&B run per job (the W&B logger without a server: tests/unit/test_loggers.py). The jobs train DCGANs
of 4 base channels: what is checked is the sweep, and the trials draw batches of up to 128."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from omegaconf import OmegaConf

from ganzoo.checkpoint import load_checkpoint_file
from ganzoo.cli import CONFIG_DIR
from tests.builders import read_rows
from tests.conftest import QUIET, SMALL_NETS, cli_env, run_cli, wandb_records

LRS = {"0": 1e-4, "1": 2e-4}


def wandb_env(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    wandb_dir = tmp_path / "wandb"
    return cli_env(
        data_dir,
        WANDB_MODE="offline",
        WANDB_DIR=str(wandb_dir),
        WANDB_CACHE_DIR=str(wandb_dir / "cache"),
        WANDB_CONFIG_DIR=str(wandb_dir / "config"),
        WANDB_DATA_DIR=str(wandb_dir / "data"),
    )


def final_value(run_dir: Path, key: str) -> float:
    rows = [r for r in read_rows(run_dir)[1] if r.get(key)]
    return float(max(rows, key=lambda r: int(r["step"]))[key])


def test_multirun_one_dir_and_one_finished_wandb_run_per_job(tiny_data_dir: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    env = wandb_env(tiny_data_dir, tmp_path)
    overrides = ("-m", "model.lr=1e-4,2e-4", "logger=wandb", "task_name=sweep_test", *QUIET, *SMALL_NETS)
    run_cli("train", *overrides, f"hydra.sweep.dir={sweep}", env=env)

    run_ids = set()
    for job, lr in LRS.items():
        checkpoint = load_checkpoint_file(sweep / job / "checkpoints" / "last.ckpt")
        assert checkpoint["hyper_parameters"]["lr"] == lr
        assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == lr
        assert (sweep / job / "samples" / "last.png").is_file()
        assert f"model.lr={lr}" in OmegaConf.load(sweep / job / ".hydra" / "overrides.yaml")

        runs = list((sweep / job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        assert list(runs[0].glob("files/media/images/samples_*.png"))
        records = wandb_records(next(runs[0].glob("run-*.wandb")))
        kinds = [r.WhichOneof("record_type") for r in records]
        assert kinds.count("run") == 1 and kinds.count("exit") == 1  # the job finished its run
        run = next(r.run for r in records if r.HasField("run"))
        exit_record = next(r.exit for r in records if r.HasField("exit"))
        assert exit_record.exit_code == 0
        run_ids.add(run.run_id)
        assert run.run_group == "sweep_test"  # grouped by experiment (task_name)
        assert run.job_type == f"sweep-{sweep.name}" and run.display_name.endswith(f"-{job}")
        assert f"model.lr={lr}" in run.notes
        config = {
            item.key: json.loads(item.value_json) for r in records if r.HasField("config") for item in r.config.update
        }
        assert config["model"]["lr"] == lr and config["task_name"] == "sweep_test"
        history = [item for r in records if r.HasField("history") for item in r.history.item]
        logged = {item.key or "/".join(item.nested_key) for item in history}
        assert {"val/fid_fmnist", "train/loss_d", "train/loss_g"} <= logged  # metric curves
    assert len(run_ids) == 2


def test_ddp_multirun_starts_each_jobs_processes_in_its_dir(tiny_data_dir: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    overrides = ("-m", "trainer=ddp_cpu", "model.lr=1e-4,2e-4", *QUIET, *SMALL_NETS, f"hydra.sweep.dir={sweep}")
    proc = run_cli("train", *overrides, env=cli_env(tiny_data_dir), timeout=300)
    log = proc.stdout + proc.stderr
    # Only the parent sweeps: the second processes run their job alone, not the sweep again.
    assert log.count("Launching 2 jobs") == 1 and log.count("#0 :") == 1 and log.count("#1 :") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    for job, lr in LRS.items():
        # Rank 1 ran in the job's directory with the job's overrides.
        rank1 = (sweep / job / "train_ddp_process_1.log").read_text()
        assert "DDP local rank 1:" in rank1 and f"model.lr={lr}" in rank1
        checkpoint = load_checkpoint_file(sweep / job / "checkpoints" / "last.ckpt")
        assert checkpoint["global_step"] == 3 and checkpoint["hyper_parameters"]["lr"] == lr
        assert checkpoint["ganzoo"]["noise_states"].shape[0] == 2  # two processes trained this job


def test_optuna_sweep_records_the_best_trial(tiny_data_dir: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    overrides = ("hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", *QUIET, *SMALL_NETS)
    run_cli("train", *overrides, f"hydra.sweep.dir={sweep}", env=cli_env(tiny_data_dir))

    results = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    trials = {}
    for trial in ("0", "1"):
        params = dict(o.split("=", 1) for o in OmegaConf.load(sweep / trial / ".hydra" / "overrides.yaml"))
        # The objective: the final FID the trial logged (metrics.monitor).
        trials[trial] = (final_value(sweep / trial, "val/fid_fmnist"), params)
        checkpoint = load_checkpoint_file(sweep / trial / "checkpoints" / "last.ckpt")
        assert checkpoint["hyper_parameters"]["lr"] == float(params["model.lr"])
    best_fid, best_params = min(trials.values(), key=lambda t: t[0])
    assert abs(results["best_value"] - best_fid) <= 1e-6 * best_fid
    assert {k: str(v) for k, v in results["best_params"].items()} == {k: best_params[k] for k in results["best_params"]}

    space = OmegaConf.load(Path(CONFIG_DIR) / "hparams_search" / "optuna.yaml").hydra.sweeper.params
    assert set(results["best_params"]) == set(space)
    parser = OverridesParser.create()
    for key, value in results["best_params"].items():
        sweep_range = parser.parse_override(f"{key}={space[key]}").value()
        if isinstance(sweep_range, IntervalSweep):
            assert sweep_range.start <= value <= sweep_range.end, key
        else:
            assert isinstance(sweep_range, ChoiceSweep) and value in sweep_range.list, key


def test_submitit_local_launcher_runs_a_ddp_job(tiny_data_dir: Path, tmp_path: Path) -> None:
    # The job runs under submitit's entry point, not ganzoo.train: the DDP relaunch must still start ganzoo.
    sweep = tmp_path / "sweep"
    overrides = ("-m", "hydra/launcher=submitit_local", "trainer=ddp_cpu", "model.lr=1e-4", *QUIET, *SMALL_NETS)
    run_cli("train", *overrides, f"hydra.sweep.dir={sweep}", env=cli_env(tiny_data_dir), timeout=300)
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))
    assert "model.lr=0.0001" in (sweep / "0" / "train_ddp_process_1.log").read_text()
    assert load_checkpoint_file(sweep / "0" / "checkpoints" / "last.ckpt")["global_step"] == 3


def test_slurm_launcher_writes_one_task_per_device(tmp_path: Path) -> None:
    # No SLURM here: sbatch and srun that refuse; the sbatch script submitit wrote stays behind.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).write_text("#!/bin/sh\necho 'not a SLURM cluster' >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    env = cli_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    sweep = tmp_path / "sweep"
    overrides = (
        "-m",
        "hydra/launcher=slurm",
        "trainer=ddp_multinode",
        "trainer.devices=4",
        "hydra.launcher.partition=gpu",
    )
    proc = run_cli("train", *overrides, "model.lr=1e-4,2e-4", f"hydra.sweep.dir={sweep}", env=env, check=False)
    assert proc.returncode != 0 and "not a SLURM cluster" in proc.stderr
    script = next((sweep / ".submitit").glob(".submission_file_*.sh")).read_text()
    for line in ("--array=0-1", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu"):
        assert f"#SBATCH {line}" in script, script
    assert "#SBATCH --signal=USR2@120" in script and "#SBATCH --job-name=train" in script
    assert "-m submitit.core._submit" in script
