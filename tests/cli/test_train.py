"""``python -m ganzoo.train`` as a process: the default run and its report, resume under DDP, the loggers, DDP.
(Every experiment and resume in one process: tests/unit/test_train.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png, read_file

from ganzoo.checkpoint import load_checkpoint_file
from tests.builders import assert_resume_is_exact, read_rows
from tests.conftest import QUIET, SMALL_NETS, cli_env, run_cli
from tests.replicas import assert_replicas_identical, replica_overrides


def fid_by_step(run_dir: Path, key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in read_rows(run_dir)[1] if r.get(key)}


def test_default_run_is_dcgan_on_fashion_mnist_32() -> None:
    proc = run_cli("train", "--cfg", "job", "--resolve", "hydra.run.dir=/tmp/unused")
    assert "_target_: ganzoo.models.dcgan.DCGAN" in proc.stdout
    assert "_target_: ganzoo.data.fashion_mnist.FashionMNISTDataModule" in proc.stdout
    assert "image_size: 32" in proc.stdout and "lr: 0.0002" in proc.stdout and "nz: 100" in proc.stdout


def test_resume_under_ddp_equals_uninterrupted_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    # Two processes, 256 train images, global batch 64: 4 iterations per epoch, 6 cross an epoch boundary.
    # Random flips through 2 worker processes per rank: augmentation must resume exactly too. Stopping at 3
    # resumes from the end-of-run last.ckpt. (One process, mid-epoch, at an epoch end, short epochs:
    # tests/unit/test_train.py.)
    env = cli_env(tiny_data_dir)
    common = (*QUIET, *SMALL_NETS, "data.flip=true", "data.num_workers=2", "trainer=ddp_cpu")
    run_cli("train", *common, "trainer.max_steps=6", f"hydra.run.dir={tmp_path / 'full'}", env=env)
    run_cli("train", *common, "trainer.max_steps=3", f"hydra.run.dir={tmp_path / 'first'}", env=env)
    first = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed_dir = tmp_path / "resumed"
    run_cli("train", *common, "trainer.max_steps=6", f"ckpt_path={first}", f"hydra.run.dir={resumed_dir}", env=env)
    assert_resume_is_exact(
        tmp_path / "full" / "checkpoints" / "last.ckpt", first, resumed_dir / "checkpoints" / "last.ckpt"
    )


def test_wandb_logger_runs_offline_and_keeps_sample_images(tiny_data_dir: Path, tmp_path: Path) -> None:
    wandb_dir = tmp_path / "wandb"
    env = cli_env(
        tiny_data_dir,
        home=tmp_path / "home",  # no ~/.netrc: no credentials, so the logger must go offline by itself
        WANDB_DIR=str(wandb_dir),
        WANDB_CACHE_DIR=str(wandb_dir / "cache"),
        WANDB_CONFIG_DIR=str(wandb_dir / "config"),
        WANDB_DATA_DIR=str(wandb_dir / "data"),
    )
    run_dir = tmp_path / "run"
    proc = run_cli("train", "logger=wandb", *QUIET, *SMALL_NETS, f"hydra.run.dir={run_dir}", env=env, timeout=240)
    log = proc.stdout + proc.stderr
    assert log.count("W&B: no credentials") == 1
    runs = list(run_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 1, list(run_dir.rglob("*"))[:20]
    images = list(runs[0].glob("files/media/images/samples_*.png"))
    assert len(images) >= 3  # steps 0, 2 and 3
    assert decode_png(read_file(str(images[0]))).shape[0] in (1, 3)
    assert list(runs[0].glob("run-*.wandb"))


def test_tensorboard_logger_writes_events(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli("train", "logger=tensorboard", *QUIET, *SMALL_NETS, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_default_run_logs_fid_and_evaluate_reproduces_it(
    dcgan_smoke_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    run_dir = dcgan_smoke_run  # python -m ganzoo.train debug=smoke trainer.accelerator=cpu
    fid = fid_by_step(run_dir, "val/fid_fmnist")
    assert sorted(fid) == [0, 2, 3]  # before training, every 2 steps (debug=smoke), at the end
    rows = read_rows(run_dir)[1]
    assert any(r.get("evaluator/accuracy_fmnist") for r in rows)
    assert any(r.get("val/kid_fmnist") and r.get("val/is_fmnist") and r.get("val/class_coverage_fmnist") for r in rows)

    # checkpoints/best.ckpt holds the better of steps 2 and 3, and the summary says which.
    best_step = min((2, 3), key=lambda step: fid[step])
    assert load_checkpoint_file(run_dir / "checkpoints" / "best.ckpt")["global_step"] == best_step
    assert f"best val/fid_fmnist = {fid[best_step]:.4f} at step {best_step}" in (run_dir / "train.log").read_text()

    # The evaluator (a classifier) and the real statistics live in the cache, not in checkpoints.
    cache = tiny_data_dir / "cache"
    assert list((cache / "evaluators").glob("fmnist-32px-1ch-classifier-*.pt"))
    assert list((cache / "real_statistics").glob("fmnist-val-32px-1ch-all-classifier_*-fid+kid.pt"))
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert all(k.startswith(("generator.", "discriminator.")) for k in checkpoint["state_dict"])

    report_file = tmp_path / "last_metrics.json"
    proc = run_cli(
        "evaluate", f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", f"out={report_file}", env=cli_env(tiny_data_dir)
    )
    report = json.loads(report_file.read_text())
    assert report["step"] == 3 and report["num_samples"] == 32 and report["extractor"] == "fmnist"
    assert report["metrics"]["val/fid_fmnist"] == pytest.approx(fid[3], rel=1e-6)
    assert f"val/fid_fmnist = {report['metrics']['val/fid_fmnist']:.6g}" in proc.stdout


def test_ddp_cpu_two_processes(tiny_data_dir: Path, tmp_path: Path) -> None:
    # 33 generated images: 17 on rank 0 and 16 on rank 1, in uneven numbers of batches.
    run_dir = tmp_path / "run"
    env = cli_env(tiny_data_dir, GANZOO_CACHE=str(tmp_path / "ddp-cache"))
    overrides = ("trainer=ddp_cpu", *QUIET, "metrics.evaluation.num_samples=33")
    replicas = replica_overrides(tmp_path / "replicas")
    run_cli("train", *overrides, *replicas, f"hydra.run.dir={run_dir}", env=env, timeout=300)
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3
    # Both ranks hold the same weights (batch-norm statistics are per rank without sync_batchnorm), and each
    # loaded half of the global batch of 64.
    assert assert_replicas_identical(tmp_path / "replicas")["batch_sizes"] == [32, 32, 32]
    noise = checkpoint["ganzoo"]["noise_states"]
    assert noise.shape[0] == 2 and not torch.equal(noise[0], noise[1])  # each rank draws its own latents

    # One process, real statistics recomputed in a fresh cache: the same metrics as the two processes gave.
    logged = {
        k: float(r[k]) for r in read_rows(run_dir)[1] if int(r["step"]) == 3 for k in r if k.startswith("val/") and r[k]
    }
    run_cli(
        "evaluate", f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", f"cache_dir={tmp_path / 'fresh-cache'}", env=env
    )
    single = json.loads((run_dir / "checkpoints" / "last_metrics.json").read_text())["metrics"]
    assert set(single) == set(logged) and "val/kid_fmnist" in single
    for key, value in single.items():
        assert value == pytest.approx(logged[key], rel=1e-4, abs=1e-6), key


def test_pix2pix_ddp_cpu_two_processes_keeps_identical_replicas_and_paired_metrics(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    """experiment=pix2pix_fmnist (tiny networks) under two processes: both ranks hold the same weights, each loaded
    half of the global batch, and the paired metrics of the 33 translations split 17 + 16 over the ranks equal what
    one process computes from the checkpoint. Rank 0's W&B run (offline) gets the input | output | target table."""
    run_dir = tmp_path / "run"
    wandb_dir = tmp_path / "wandb"
    env = cli_env(
        tiny_data_dir, home=tmp_path / "home", GANZOO_CACHE=str(tmp_path / "ddp-cache"), WANDB_DIR=str(wandb_dir),
        WANDB_CACHE_DIR=str(wandb_dir / "cache"), WANDB_CONFIG_DIR=str(wandb_dir / "config"),
        WANDB_DATA_DIR=str(wandb_dir / "data"),
    )  # fmt: skip
    overrides = (
        "experiment=pix2pix_fmnist", "trainer=ddp_cpu", "logger=[csv,wandb]", *QUIET, *SMALL_NETS, "data.batch_size=8",
    )  # fmt: skip
    replicas = replica_overrides(tmp_path / "replicas")
    run_cli(
        "train", *overrides, "metrics.evaluation.num_samples=33", *replicas, f"hydra.run.dir={run_dir}", env=env,
        timeout=300,
    )  # fmt: skip
    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert assert_replicas_identical(tmp_path / "replicas")["batch_sizes"] == [4, 4, 4]

    logged = {
        k: float(r[k]) for r in read_rows(run_dir)[1] if int(r["step"]) == 3 for k in r if k.startswith("val/") and r[k]
    }
    assert {"val/l1", "val/psnr", "val/ssim", "val/class_accuracy_fmnist"} <= set(logged)
    run_cli("evaluate", f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", env=env)
    single = json.loads((run_dir / "checkpoints" / "last_metrics.json").read_text())["metrics"]
    assert set(single) == set(logged)
    for key, value in single.items():
        assert value == pytest.approx(logged[key], rel=1e-4, abs=1e-6), key

    runs = list(run_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 1  # rank 0's
    tables = sorted(runs[0].glob("files/media/table/translation_table_*.table.json"))
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["input", "output", "target"] and len(table["data"]) == 2
