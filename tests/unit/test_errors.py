"""Bad input stops a run with one ganzoo error whose message is one line naming the fix, before any work where it
can: the runs of ``ganzoo.train.train`` and the bodies of ``python -m ganzoo.sample`` and ``python -m
ganzoo.evaluate`` in this process (that a real process prints ``error: <message>`` on stderr and exits with status
1 is tests/cli/test_errors.py's and tests/cli/test_evaluate.py's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import MissingConfigException

from ganzoo.checkpoint import load_checkpoint_file
from ganzoo.errors import ConfigError, DataError, GanzooError, ganzoo_cause
from ganzoo.train import compose_config
from tests.conftest import QUIET, TINY, EntryPointRun
from tests.data.writers import write_image_folder

Train = Callable[..., dict[str, float]]
EntryPoint = Callable[..., EntryPointRun]


def one_line(error: BaseException, kind: type[GanzooError]) -> str:
    """The message of the ganzoo error behind ``error`` (also inside Hydra's InstantiationException), which must be a
    ``kind`` and one line."""
    cause = ganzoo_cause(error)
    assert isinstance(cause, kind), repr(error)
    message = str(cause)
    assert message and "\n" not in message, message
    return message


def train_error(train: Callable[[], object], kind: type[GanzooError]) -> str:
    with pytest.raises(Exception) as caught:
        train()
    return one_line(caught.value, kind)


# ------------------------------------------------------------------------------------------------ datasets


def train_on_folder(train_in_process: Train, folder: Path, tmp_path: Path, weights: Path, *extra: str) -> str:
    overrides = (
        "experiment=dcgan_folder",
        f"data.data_dir={folder}",
        f"metrics.evaluation.extractor.weights_path={weights}",
        *QUIET,
        *extra,
    )
    return train_error(lambda: train_in_process(tmp_path / "run", *overrides, data_dir=tmp_path), DataError)


def test_missing_dataset_dir(train_in_process: Train, tmp_path: Path, random_inception_weights: Path) -> None:
    line = train_on_folder(train_in_process, tmp_path / "nowhere", tmp_path, random_inception_weights)
    assert str(tmp_path / "nowhere") in line and "does not exist" in line
    assert "data.data_dir" in line


def test_empty_dataset_folder(train_in_process: Train, tmp_path: Path, random_inception_weights: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    line = train_on_folder(train_in_process, tmp_path / "empty", tmp_path, random_inception_weights)
    assert "contains no images" in line and str(tmp_path / "empty") in line


def test_corrupt_image_names_the_file(train_in_process: Train, tmp_path: Path, random_inception_weights: Path) -> None:
    folder = write_image_folder(tmp_path / "imgs", n=70, size=64)
    bad = folder / "img0003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    line = train_on_folder(train_in_process, folder, tmp_path, random_inception_weights, "data.num_workers=0")
    assert str(bad) in line and ("remove" in line or "replace" in line)


def test_corrupt_image_through_dataloader_workers(
    train_in_process: Train, tmp_path: Path, random_inception_weights: Path
) -> None:
    folder = write_image_folder(tmp_path / "imgs", n=70, size=64)
    bad = folder / "img0005.png"
    bad.write_bytes(b"not a png at all")
    line = train_on_folder(train_in_process, folder, tmp_path, random_inception_weights, "data.num_workers=2")
    assert str(bad) in line


def test_missing_fashion_mnist_names_all_remedies_fast(train_in_process: Train, tmp_path: Path) -> None:
    start = time.monotonic()
    run = lambda: train_in_process(  # noqa: E731
        tmp_path / "run", *QUIET, "data.system_dir=null", data_dir=tmp_path / "empty-data"
    )
    line = train_error(run, DataError)
    elapsed = time.monotonic() - start
    assert "Fashion-MNIST not found" in line
    assert "FashionMNIST/raw" in line and "dataset-fashion-mnist" in line and "download" in line
    assert elapsed < 60


# ---------------------------------------------------------------------------------------------- the config


def test_unknown_config_group_option(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException) as caught:
        compose_config(["model=dcgann"], output_dir=str(tmp_path / "run"))
    assert "Could not find 'model/dcgann'" in str(caught.value) and "dcgan" in str(caught.value)


def test_bad_value_inside_instantiation_is_one_line(train_in_process: Train, tmp_path: Path) -> None:
    # Hydra wraps errors raised while building objects; the ganzoo error inside is still one line.
    line = train_error(lambda: train_in_process(tmp_path / "run", "data.image_size=48"), ConfigError)
    assert "image_size = 4 * 2^k" in line and "set data.image_size=" in line


def test_monitoring_a_metric_that_is_not_computed(train_in_process: Train, tmp_path: Path) -> None:
    run = lambda: train_in_process(tmp_path / "run", *QUIET, "metrics.monitor=val/fid_inception")  # noqa: E731
    line = train_error(run, ConfigError)
    assert line.startswith("metrics.monitor=val/fid_inception is not computed by this evaluation: pick one of")
    assert "val/fid_fmnist" in line


# --------------------------------------------------------------------------------------------- resuming


def test_resume_from_another_models_checkpoint(train_in_process: Train, tiny_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = load_checkpoint_file(tiny_checkpoint)
    checkpoint["ganzoo"]["model_class"] = "ganzoo.models.cyclegan.CycleGAN"
    foreign = tmp_path / "cyclegan.ckpt"
    torch.save(checkpoint, foreign)
    run = lambda: train_in_process(tmp_path / "again", *QUIET, *TINY, f"ckpt_path={foreign}")  # noqa: E731
    line = train_error(run, GanzooError)
    assert "is a CycleGAN checkpoint but the configured model is DCGAN" in line and "model=" in line


def test_resume_with_max_steps_already_reached(train_in_process: Train, tiny_checkpoint: Path, tmp_path: Path) -> None:
    overrides = (*QUIET, *TINY, "trainer.max_steps=3", f"ckpt_path={tiny_checkpoint}")
    line = train_error(lambda: train_in_process(tmp_path / "r", *overrides), ConfigError)
    assert "already at step 3 and trainer.max_steps=3" in line and "set trainer.max_steps above 3" in line


# ------------------------------------------------------------------------------- python -m ganzoo.sample


def error_of(entry_point: EntryPoint, module: str, *overrides: str, **env: str) -> str:
    """The body of ``python -m ganzoo.<module> <overrides>``, run here with the environment variables ``env``: it
    must stop with exit status 1 and one line ``error: <message>``, all it prints on stderr; returns that line."""
    run = entry_point(module, *overrides, **env)
    line = run.error_line()
    assert [text.strip() for text in run.err.splitlines() if text.strip()] == [line], run.err[-3000:]
    return line


def test_checkpoint_that_is_not_a_checkpoint(tmp_path: Path, entry_point: EntryPoint) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"definitely not a torch file")
    line = error_of(entry_point, "sample", f"ckpt={junk}", "n=2", f"out={tmp_path / 's.npz'}")
    assert str(junk) in line and "PyTorch file" in line


def test_checkpoint_with_code_is_refused(tmp_path: Path, entry_point: EntryPoint) -> None:
    # weights_only loading: a pickle that would construct an arbitrary object is rejected.
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("x")}, evil)
    line = error_of(entry_point, "sample", f"ckpt={evil}", "n=2", f"out={tmp_path / 's.npz'}")
    assert "weights_only=True" in line


def test_missing_checkpoint(tmp_path: Path, entry_point: EntryPoint) -> None:
    line = error_of(entry_point, "sample", f"ckpt={tmp_path / 'nope.ckpt'}", "n=2")
    assert "does not exist" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("grid_n=0", "grid_n=0 must be a positive integer"),
        ("truncation=0", "truncation=0 must be a positive threshold"),
        ("n=abc", "n='abc' is not a positive integer"),
        ("out=samples", "must be a file name ending in .npz"),
    ],
)
def test_sample_bad_options(
    override: str, expected: str, tiny_checkpoint: Path, tmp_path: Path, entry_point: EntryPoint
) -> None:
    args = [f"ckpt={tiny_checkpoint}", "n=4", f"grid={tmp_path / 'g.png'}", f"out={tmp_path / 's.npz'}", override]
    line = error_of(entry_point, "sample", *args)
    assert expected in line
    assert not (tmp_path / "s.npz").exists()


def test_checkpoint_naming_foreign_code_is_refused(
    tiny_checkpoint: Path, tmp_path: Path, entry_point: EntryPoint
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    checkpoint = load_checkpoint_file(tiny_checkpoint)
    checkpoint["ganzoo"]["model_config"]["generator"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    line = error_of(entry_point, "sample", f"ckpt={crafted}", "n=2", f"out={tmp_path / 's.npz'}")
    assert "'builtins.open', which is not a ganzoo model or network" in line
    assert victim.read_text() == "precious"


# ----------------------------------------------------------------------------- python -m ganzoo.evaluate


def test_evaluate_errors_are_one_line(tmp_path: Path, entry_point: EntryPoint) -> None:
    assert error_of(entry_point, "evaluate") == (
        "error: pass exactly one of ckpt=<checkpoint> or images=<folder or .npz>"
    )
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 1, 8, 8), np.uint8))
    line = error_of(entry_point, "evaluate", f"images={tmp_path / 'x.npz'}")
    assert line.startswith("error: images= needs the real data to compare with: add data=")
    data = {"GANZOO_DATA": str(tmp_path)}
    line = error_of(entry_point, "evaluate", f"images={tmp_path / 'missing.npz'}", "data=fashion_mnist", **data)
    assert line == f"error: images={tmp_path / 'missing.npz'} does not exist: pass a folder of images or an .npz file"
    (tmp_path / "notes.txt").write_text("not images")
    line = error_of(entry_point, "evaluate", f"images={tmp_path / 'notes.txt'}", "data=fashion_mnist", **data)
    assert line == f"error: images={tmp_path / 'notes.txt'} is neither a folder nor an .npz file: pass one of those"
    line = error_of(entry_point, "evaluate", f"ckpt={tmp_path / 'nothing.ckpt'}")
    assert "does not exist" in line
