"""BigGAN end to end through the real CLIs: labelled folders under DDP, resume with EMA, and ganzoo.sample from
a ganzoo checkpoint and from a BigGAN-PyTorch generator file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import decode_png, read_file

from ganzoo.checkpoint import load_checkpoint_file, load_model
from tests.conftest import QUIET, EntryPointRun, cli_env, run_cli
from tests.data.writers import write_image_folder
from tests.replicas import assert_replicas_identical, replica_overrides

#: A BigGAN small enough for a CPU test: 32 px, ch 4, batch 4 per D step.
TINY = (
    "model=biggan", "model.generator.ch=4", "model.discriminator.ch=4", "model.generator.dim_z=16",
    "model.batch_size=4", "model.num_D_steps=2", "data.num_workers=0", "metrics.evaluation.num_samples=24",
)  # fmt: skip


def test_biggan_on_a_labelled_folder_with_two_ddp_processes(tmp_path: Path, evaluator_cache: Path) -> None:
    """Cross-replica batch norm (BigGAN-PyTorch's --cross_replica) over two gloo processes."""
    data_dir = write_image_folder(tmp_path / "folder", n=10, size=36, classes=["cat", "dog", "owl"])
    run_dir = tmp_path / "run"
    run_cli(
        "train", *TINY, "data=image_folder", f"data.data_dir={data_dir}", "data.image_size=32", "data.num_classes=3",
        "metrics=classifier",
        "data.persistent_workers=false", "trainer=ddp_cpu", "trainer.sync_batchnorm=true", *QUIET,
        f"hydra.run.dir={run_dir}", *replica_overrides(tmp_path / "replicas"),
        env=cli_env(tmp_path, GANZOO_CACHE=str(evaluator_cache)), timeout=300,
    )  # fmt: skip
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3
    # Identical weights, EMA and batch-norm statistics on both ranks; 2 D steps of the global batch_size 4 each
    # take 8 real images per iteration, 4 per process.
    record = assert_replicas_identical(tmp_path / "replicas", local_statistics=False)
    assert record["batch_sizes"] == [4, 4, 4]
    assert checkpoint["ganzoo"]["noise_states"].shape[0] == 2
    model = load_model(run_dir / "checkpoints" / "last.ckpt")
    assert model.num_classes == 3 and model.generator_ema is not None
    sheet = decode_png(read_file(str(run_dir / "class_sheets" / "last.png")))
    assert sheet.shape[-2:] == (3 * 32 + 4 * 2, 8 * 32 + 9 * 2)  # a row per class, 8 latents
    for name in ("interp_z", "interp_class"):
        assert decode_png(read_file(str(run_dir / name / "last.png"))).shape[-1] == 8 * 32 + 9 * 2


@pytest.fixture(scope="module")
def biggan_runs(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, evaluator_cache: Path) -> Path:
    """Fashion-MNIST runs: 4 iterations straight, and 2 then resumed to 4 (EMA from iteration 1)."""
    root = tmp_path_factory.mktemp("biggan")
    env = cli_env(tiny_data_dir, GANZOO_CACHE=str(evaluator_cache))
    common = (*TINY, "model.ema_start=1", "model.ema_decay=0.5", "~metrics", *QUIET)
    run_cli("train", *common, "trainer.max_steps=4", f"hydra.run.dir={root / 'full'}", env=env)
    run_cli("train", *common, "trainer.max_steps=2", f"hydra.run.dir={root / 'first'}", env=env)
    first = root / "first" / "checkpoints" / "last.ckpt"
    run_cli("train", *common, "trainer.max_steps=4", f"ckpt_path={first}", f"hydra.run.dir={root / 'resumed'}", env=env)
    return root


def test_resume_restores_ema_weights_and_step(biggan_runs: Path) -> None:
    full = load_checkpoint_file(biggan_runs / "full" / "checkpoints" / "last.ckpt")
    resumed = load_checkpoint_file(biggan_runs / "resumed" / "checkpoints" / "last.ckpt")
    first = load_checkpoint_file(biggan_runs / "first" / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 2 and resumed["global_step"] == full["global_step"] == 4
    ema = [k for k in full["state_dict"] if k.startswith("generator_ema.")]
    assert ema and set(full["state_dict"]) == set(resumed["state_dict"])
    for key, value in full["state_dict"].items():
        assert torch.allclose(value.float(), resumed["state_dict"][key].float(), atol=1e-6), key
    # The EMA weights moved between the first run's end and the resumed run's end.
    key = "generator_ema.linear.weight"
    assert not torch.equal(first["state_dict"][key], full["state_dict"][key])


def sample(entry_point: Callable[..., EntryPointRun], *overrides: str) -> None:
    """The body of ``python -m ganzoo.sample <overrides>``, run in this process; it must succeed."""
    run = entry_point("sample", *overrides)
    assert run.code == 0, run.err[-3000:]


def test_sample_cli_with_truncation_and_classes(
    biggan_runs: Path, tmp_path: Path, entry_point: Callable[..., EntryPointRun]
) -> None:
    ckpt = biggan_runs / "full" / "checkpoints" / "last.ckpt"
    out = tmp_path / "s.npz"
    run_cli("sample", f"ckpt={ckpt}", "n=12", "batch_size=5", "truncation=0.5", "classes=[1,7]", f"out={out}",
            f"grid={tmp_path / 'g.png'}", "device=cpu")  # fmt: skip
    with np.load(out) as archive:
        x, y = archive["x"], archive["y"]
    assert x.shape == (12, 1, 32, 32) and x.dtype == np.uint8
    assert y.tolist() == [1, 7] * 6
    sample(entry_point, f"ckpt={ckpt}", "n=12", "batch_size=5", "classes=[1,7]", f"out={tmp_path / 'u.npz'}",
           "device=cpu")  # fmt: skip
    with np.load(tmp_path / "u.npz") as archive:
        assert not np.array_equal(archive["x"], x)  # truncation changed the latents


def test_sample_cli_loads_a_biggan_pytorch_generator_file(
    biggan_runs: Path, tmp_path: Path, entry_point: Callable[..., EntryPointRun]
) -> None:
    """A G_ema.pth in BigGAN-PyTorch's layout (state-dict keys are the same) samples like the checkpoint."""
    ckpt = biggan_runs / "full" / "checkpoints" / "last.ckpt"
    state = load_checkpoint_file(ckpt)["state_dict"]
    weights = {k.removeprefix("generator_ema."): v for k, v in state.items() if k.startswith("generator_ema.")}
    torch.save(weights, tmp_path / "G_ema.pth")
    common = ("n=10", "seed=3", "classes=[0,2,4]", "G_eval_mode=true", "device=cpu")
    run_cli("sample", f"ckpt={tmp_path / 'G_ema.pth'}", *common, f"out={tmp_path / 'pth.npz'}")
    sample(entry_point, f"ckpt={ckpt}", *common, f"out={tmp_path / 'ckpt.npz'}")  # the reference, in this process
    with np.load(tmp_path / "pth.npz") as a, np.load(tmp_path / "ckpt.npz") as b:
        assert np.array_equal(a["y"], b["y"])
        assert np.abs(a["x"].astype(int) - b["x"].astype(int)).max() <= 1
