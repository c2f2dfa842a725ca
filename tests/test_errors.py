"""Bad input gives one clear line on stderr that names the fix, and a non-zero exit, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from ganzoo.checkpoint import load_checkpoint_file
from tests.conftest import QUIET, cli_env, run_cli
from tests.data.writers import write_image_folder


@pytest.fixture(scope="module")
def sample_checkpoint(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    run_cli("train", *QUIET, f"hydra.run.dir={run_dir}", env=cli_env(tiny_data_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def error_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1]


def train_on_folder(folder: Path, tmp_path: Path, inception_weights: Path, *extra: str):
    return run_cli(
        "train",
        "experiment=dcgan_folder",
        f"data.data_dir={folder}",
        f"metrics.evaluation.extractor.weights_path={inception_weights}",
        *QUIET,
        f"hydra.run.dir={tmp_path / 'run'}",
        *extra,
        env=cli_env(tmp_path),
        check=False,
    )


def test_missing_dataset_dir(tmp_path: Path, random_inception_weights: Path) -> None:
    line = error_line(train_on_folder(tmp_path / "nowhere", tmp_path, random_inception_weights))
    assert line.startswith("error: ") and str(tmp_path / "nowhere") in line and "does not exist" in line
    assert "data.data_dir" in line


def test_empty_dataset_folder(tmp_path: Path, random_inception_weights: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    line = error_line(train_on_folder(tmp_path / "empty", tmp_path, random_inception_weights))
    assert "contains no images" in line and str(tmp_path / "empty") in line


def test_corrupt_image_names_the_file(tmp_path: Path, random_inception_weights: Path) -> None:
    folder = write_image_folder(tmp_path / "imgs", n=70, size=64)
    bad = folder / "img0003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    line = error_line(train_on_folder(folder, tmp_path, random_inception_weights, "data.num_workers=0"))
    assert str(bad) in line and ("remove" in line or "replace" in line)


def test_corrupt_image_through_dataloader_workers(tmp_path: Path, random_inception_weights: Path) -> None:
    folder = write_image_folder(tmp_path / "imgs", n=70, size=64)
    bad = folder / "img0005.png"
    bad.write_bytes(b"not a png at all")
    line = error_line(train_on_folder(folder, tmp_path, random_inception_weights, "data.num_workers=2"))
    assert str(bad) in line


def test_missing_fashion_mnist_names_all_remedies_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = run_cli(
        "train",
        *QUIET,
        "data.system_dir=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        env=cli_env(tmp_path / "empty-data"),
        check=False,
    )
    elapsed = time.monotonic() - start
    line = error_line(proc)
    assert "Fashion-MNIST not found" in line
    assert "FashionMNIST/raw" in line and "dataset-fashion-mnist" in line and "download" in line
    assert elapsed < 60


def test_unknown_config_key_fails_before_training(tmp_path: Path) -> None:
    proc = run_cli("train", "model.lrr=1", f"hydra.run.dir={tmp_path / 'run'}", env=cli_env(tmp_path), check=False)
    assert proc.returncode != 0
    assert "Could not override 'model.lrr'" in proc.stderr and "Key 'lrr' is not in struct" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_config_group_option(tmp_path: Path) -> None:
    proc = run_cli("train", "model=dcgann", env=cli_env(tmp_path), check=False)
    assert proc.returncode != 0
    assert "Could not find 'model/dcgann'" in proc.stderr and "dcgan" in proc.stderr


def test_resume_from_another_models_checkpoint(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_cli("train", *QUIET, f"hydra.run.dir={tmp_path / 'run'}", env=cli_env(tiny_data_dir))
    checkpoint = load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    checkpoint["ganzoo"]["model_class"] = "ganzoo.models.cyclegan.CycleGAN"
    foreign = tmp_path / "cyclegan.ckpt"
    torch.save(checkpoint, foreign)
    proc = run_cli(
        "train",
        *QUIET,
        f"ckpt_path={foreign}",
        f"hydra.run.dir={tmp_path / 'again'}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    line = error_line(proc)
    assert "is a CycleGAN checkpoint but the configured model is DCGAN" in line and "model=" in line


def test_checkpoint_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"definitely not a torch file")
    line = error_line(run_cli("sample", f"ckpt={junk}", "n=2", f"out={tmp_path / 's.npz'}", check=False))
    assert str(junk) in line and "PyTorch file" in line


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    # weights_only loading: a pickle that would construct an arbitrary object is rejected.
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("x")}, evil)
    line = error_line(run_cli("sample", f"ckpt={evil}", "n=2", f"out={tmp_path / 's.npz'}", check=False))
    assert "weights_only=True" in line


def test_missing_checkpoint(tmp_path: Path) -> None:
    line = error_line(run_cli("sample", f"ckpt={tmp_path / 'nope.ckpt'}", "n=2", check=False))
    assert "does not exist" in line


def test_bad_value_inside_instantiation_is_one_line(tmp_path: Path) -> None:
    # Hydra wraps errors raised while building objects; the user still gets the one line.
    line = error_line(run_cli("train", "data.image_size=48", f"hydra.run.dir={tmp_path / 'run'}", check=False))
    assert "image_size = 4 * 2^k" in line and "set data.image_size=" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("grid_n=0", "grid_n=0 must be a positive integer"),
        ("truncation=0", "truncation=0 must be a positive threshold"),
        ("n=abc", "n='abc' is not a positive integer"),
        ("out=samples", "must be a file name ending in .npz"),
    ],
)
def test_sample_cli_bad_options(override: str, expected: str, sample_checkpoint: Path, tmp_path: Path) -> None:
    args = [f"ckpt={sample_checkpoint}", "n=4", f"grid={tmp_path / 'g.png'}", f"out={tmp_path / 's.npz'}", override]
    line = error_line(run_cli("sample", *args, check=False))
    assert expected in line
    assert not (tmp_path / "s.npz").exists()


def test_checkpoint_naming_foreign_code_is_refused(sample_checkpoint: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    checkpoint = load_checkpoint_file(sample_checkpoint)
    checkpoint["ganzoo"]["model_config"]["generator"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    line = error_line(run_cli("sample", f"ckpt={crafted}", "n=2", f"out={tmp_path / 's.npz'}", check=False))
    assert "'builtins.open', which is not a ganzoo model or network" in line
    assert victim.read_text() == "precious"


def test_resume_with_max_steps_already_reached(sample_checkpoint: Path, tiny_data_dir: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "train", *QUIET, "trainer.max_steps=3", f"ckpt_path={sample_checkpoint}", f"hydra.run.dir={tmp_path / 'r'}",
        env=cli_env(tiny_data_dir), check=False,
    )  # fmt: skip
    line = error_line(proc)
    assert "already at step 3 and trainer.max_steps=3" in line and "set trainer.max_steps above 3" in line


def test_monitoring_a_metric_that_is_not_computed(tiny_data_dir: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "train",
        *QUIET,
        "metrics.monitor=val/fid_inception",
        f"hydra.run.dir={tmp_path / 'run'}",
        env=cli_env(tiny_data_dir),
        check=False,
    )
    line = error_line(proc)
    assert line.startswith("error: metrics.monitor=val/fid_inception is not computed by this evaluation: pick one of")
    assert "val/fid_fmnist" in line
