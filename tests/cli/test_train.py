"""End-to-end runs of ``python -m ganzoo.train``: every experiment, resume, multirun, loggers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png, read_file

from ganzoo.checkpoint import load_checkpoint_file, load_model
from ganzoo.cli import CONFIG_DIR
from ganzoo.errors import ConfigError
from ganzoo.train import compose_config, train
from tests.conftest import QUIET, cli_env, run_cli
from tests.replicas import assert_replicas_identical, replica_overrides

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_experiments_are_found() -> None:
    expected = {"dcgan_fmnist", "dcgan_cifar10", "dcgan_folder", "cyclegan_fmnist", "cyclegan_horse2zebra"}
    assert expected | {"biggan_cifar10", "biggan_fmnist", "biggan_imagenet128"} <= set(EXPERIMENTS)


def fid_by_step(run_dir: Path, key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in read_metrics(run_dir) if r.get(key)}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_on_tiny_data(
    experiment: str, tiny_data_dir: Path, tmp_path: Path, random_inception_weights: Path
) -> None:
    run_dir = tmp_path / "run"
    config = compose_config([f"experiment={experiment}"])
    inception = config.metrics.evaluation.extractor._target_.endswith("InceptionFeatures")
    translation = config.model._target_.endswith("CycleGAN")
    extra = []
    if inception:  # recipes with Inception metrics run on a local weights file, as on a machine without network
        # InceptionV3 at 299 px is the slow part on a CPU: evaluate once, at the end.
        extra += [f"metrics.evaluation.extractor.weights_path={random_inception_weights}", "metrics.at_start=false"]
        extra += ["metrics.every_n_steps=0"]
    if translation:  # the tiny datasets hold a dozen images per domain
        extra += ["data.batch_size=4", "data.num_workers=0"]
    if config.data.image_size > 64:  # the full recipe's 256 px crops take minutes on a CPU; the code path is the same
        extra += ["data.image_size=64", "data.load_size=72"]
    if config.model._target_.endswith("BigGAN"):  # the recipes' widths and batches, shrunk to the tiny datasets
        extra += ["model.batch_size=4", "model.generator.ch=4", "model.discriminator.ch=4", "data.num_workers=0"]
        if config.data.num_classes > 100:  # ImageNet's 1000 classes; the tiny folder is unlabelled
            extra += [f"data.data_dir={tiny_data_dir / 'images'}", "data.num_classes=0"]
    run_cli("train", f"experiment={experiment}", *QUIET, *extra, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    name = "inception" if inception else "fmnist"
    assert sorted(fid_by_step(run_dir, f"val/fid_{name}")) == ([3] if inception else [0, 2, 3])

    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3
    model = load_model(run_dir / "checkpoints" / "last.ckpt")
    if translation:
        side = min(config.data.image_size, 64)
        images = model.translate(torch.rand(4, config.data.channels, side, side) * 2 - 1, "AtoB")
        folder = run_dir / "translations"
    else:
        images = model.generate(n=4)
        folder = run_dir / "samples"
    assert images.min() >= -1 and images.max() <= 1 and images.shape[0] == 4
    grids = sorted(folder.glob("step_*.png"))
    assert [p.name for p in grids] == ["step_0000000.png", "step_0000002.png", "step_0000003.png"]
    if not translation:
        grid = decode_png(read_file(str(grids[-1])))
        side, per_row = images.shape[-1], config.callbacks.sample_grid.get("nrow") or 4
        assert grid.shape[-1] == per_row * side + (per_row + 1) * 2  # 16 samples: 4x4 unless nrow says, 2 px padding

    rows = [r for r in read_metrics(run_dir) if r.get("train/loss_g")]
    assert len(rows) == 3
    assert all(math.isfinite(float(r["train/loss_g"])) for r in rows)


def test_default_run_is_dcgan_on_fashion_mnist_32() -> None:
    proc = run_cli("train", "--cfg", "job")
    assert "_target_: ganzoo.models.dcgan.DCGAN" in proc.stdout
    assert "_target_: ganzoo.data.fashion_mnist.FashionMNISTDataModule" in proc.stdout
    proc = run_cli("train", "--cfg", "job", "--resolve", "hydra.run.dir=/tmp/unused")
    assert "image_size: 32" in proc.stdout and "lr: 0.0002" in proc.stdout and "nz: 100" in proc.stdout


def _tiny_in_process(tiny_data_dir: Path, tmp_path: Path, *overrides: str):
    """A composed run of two iterations without evaluation, small nets, for ``train(cfg)`` in this process."""
    tiny = ["model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=4", "data.num_workers=0"]
    extra = [*tiny, "~metrics", "trainer.accelerator=cpu", "trainer.max_steps=2", *overrides]
    return compose_config([*extra, f"paths.data_dir={tiny_data_dir}"], output_dir=str(tmp_path / "run"))


def test_invalid_trainer_setting_is_one_config_error(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = _tiny_in_process(tiny_data_dir, tmp_path, "trainer.precision=bogus")
    with pytest.raises(
        ConfigError, match=r"^the trainer settings are invalid \(.*bogus.*\): fix the trainer\.\* value"
    ):
        train(cfg)


def test_trainer_without_progress_bar_drops_the_configured_one(tiny_data_dir: Path, tmp_path: Path, capsys) -> None:
    # callbacks.progress_bar is configured; enable_progress_bar=false removes it (Lightning refuses the pair).
    cfg = _tiny_in_process(
        tiny_data_dir, tmp_path, "+trainer.enable_progress_bar=false", "callbacks.model_summary=null"
    )
    assert cfg.callbacks.progress_bar is not None
    train(cfg)
    output = capsys.readouterr()
    # With the bar, its final state is printed once: `train ━━━━ 2/2 0:00:03 • 0:00:00 1.97 it/s`.
    assert "2/2" not in output.out + output.err
    assert load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 2


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)["state_dict"]


def _adam_moments(path: Path) -> list[torch.Tensor]:
    return [s["exp_avg_sq"] for opt in load_checkpoint_file(path)["optimizer_states"] for s in opt["state"].values()]


@pytest.mark.parametrize(
    ("stop_at", "extra"),
    [(3, ()), (4, ()), (3, ("trainer.limit_train_batches=2",)), (3, ("trainer=ddp_cpu",))],
    ids=["mid-epoch", "epoch-end", "short-epochs", "ddp-2-processes"],
)
def test_resume_equals_uninterrupted_run(
    stop_at: int, extra: tuple[str, ...], tiny_data_dir: Path, tmp_path: Path
) -> None:
    # 256 train images, batch 64: 4 iterations per epoch (2 with the limit); 6 iterations cross an epoch
    # boundary. Checkpoints every 2 iterations, so stopping at 3 resumes from the end-of-run last.ckpt.
    # Random flips through 2 worker processes: augmentation must resume exactly too.
    env = cli_env(tiny_data_dir)
    common = (*QUIET, "data.flip=true", "data.num_workers=2", *extra)
    run_cli("train", *common, "trainer.max_steps=6", f"hydra.run.dir={tmp_path / 'full'}", env=env)
    run_cli("train", *common, f"trainer.max_steps={stop_at}", f"hydra.run.dir={tmp_path / 'first'}", env=env)
    first = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(first)["global_step"] == stop_at
    resumed_dir = tmp_path / "resumed"
    run_cli("train", *common, "trainer.max_steps=6", f"ckpt_path={first}", f"hydra.run.dir={resumed_dir}", env=env)

    full, resumed = tmp_path / "full" / "checkpoints" / "last.ckpt", resumed_dir / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(resumed)["global_step"] == 6
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming"
    for x, y in zip(_adam_moments(full), _adam_moments(resumed), strict=True):
        assert torch.equal(x, y)
    # The interrupted run really stopped early, so the equality above is not vacuous.
    assert not torch.equal(_weights(first)["generator.main.0.weight"], a["generator.main.0.weight"])


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
    proc = run_cli("train", "logger=wandb", *QUIET, f"hydra.run.dir={run_dir}", env=env, timeout=240)
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
    run_cli("train", "logger=tensorboard", *QUIET, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_default_run_logs_fid_and_evaluate_reproduces_it(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = cli_env(tiny_data_dir)
    proc = run_cli("train", *QUIET, f"hydra.run.dir={run_dir}", env=env)
    fid = fid_by_step(run_dir, "val/fid_fmnist")
    assert sorted(fid) == [0, 2, 3]  # before training, every 2 steps (debug=smoke), at the end
    rows = read_metrics(run_dir)
    assert any(r.get("evaluator/accuracy_fmnist") for r in rows)
    assert any(r.get("val/kid_fmnist") and r.get("val/is_fmnist") and r.get("val/class_coverage_fmnist") for r in rows)

    # checkpoints/best.ckpt holds the better of steps 2 and 3, and the summary says which.
    best_step = min((2, 3), key=lambda step: fid[step])
    assert load_checkpoint_file(run_dir / "checkpoints" / "best.ckpt")["global_step"] == best_step
    assert f"best val/fid_fmnist = {fid[best_step]:.4f} at step {best_step}" in proc.stdout + proc.stderr

    # The evaluator (a classifier) and the real statistics live in the cache, not in checkpoints.
    cache = tiny_data_dir / "cache"
    assert list((cache / "evaluators").glob("fmnist-32px-1ch-classifier-*.pt"))
    assert list((cache / "real_statistics").glob("fmnist-val-32px-1ch-all-classifier_*-fid+kid.pt"))
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert all(k.startswith(("generator.", "discriminator.")) for k in checkpoint["state_dict"])

    proc = run_cli("evaluate", f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", env=env)
    report = json.loads((run_dir / "checkpoints" / "last_metrics.json").read_text())
    assert report["step"] == 3 and report["num_samples"] == 32 and report["extractor"] == "fmnist"
    assert report["metrics"]["val/fid_fmnist"] == pytest.approx(fid[3], rel=1e-6)
    assert f"val/fid_fmnist = {report['metrics']['val/fid_fmnist']:.6g}" in proc.stdout


def test_without_metrics_trains_without_evaluation(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli("train", *QUIET, "~metrics", f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    assert not any(k.startswith("val/") for k in read_metrics(run_dir)[0])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt", "step_0000002.ckpt"]


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
        k: float(r[k]) for r in read_metrics(run_dir) if int(r["step"]) == 3 for k in r if k.startswith("val/") and r[k]
    }
    run_cli(
        "evaluate", f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", f"cache_dir={tmp_path / 'fresh-cache'}", env=env
    )
    single = json.loads((run_dir / "checkpoints" / "last_metrics.json").read_text())["metrics"]
    assert set(single) == set(logged) and "val/kid_fmnist" in single
    for key, value in single.items():
        assert value == pytest.approx(logged[key], rel=1e-4, abs=1e-6), key
