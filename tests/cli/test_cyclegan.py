"""CycleGAN end to end: training on unpaired, paired and DDP folders, translating folders, W&B tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png, read_file

from ganzoo.checkpoint import load_checkpoint_file, load_model
from tests.builders import read_rows
from tests.conftest import QUIET, EntryPointRun, cli_env, run_cli
from tests.data.writers import write_aligned_pairs, write_unpaired_folders
from tests.replicas import assert_replicas_identical, replica_overrides


def _tiny_cyclegan_overrides(data: str, data_dir, inception_weights) -> tuple[str, ...]:
    # InceptionV3 at 299 px is the slow part on a CPU: evaluate once, at the end.
    return (
        "model=cyclegan", f"data={data}", f"data.data_dir={data_dir}", "data.image_size=32", "data.load_size=36",
        "data.num_workers=0", "model.generator.ngf=8", "model.generator.n_blocks=2", "model.discriminator.ndf=8",
        "metrics=inception", f"metrics.evaluation.extractor.weights_path={inception_weights}",
        "metrics.evaluation.real_split=val", "metrics.at_start=false", "metrics.every_n_steps=0", *QUIET,
    )  # fmt: skip


def _unpaired_folders(root: Path) -> Path:
    # Domains of different sizes, in training and in testing.
    return write_unpaired_folders(root, n_train_a=6, n_train_b=9, n_test_a=3, n_test_b=4)


@pytest.fixture(scope="module")
def unpaired_run(tmp_path_factory: pytest.TempPathFactory, random_inception_weights: Path) -> Path:
    """The run directory of one ``python -m ganzoo.train`` of the tiny CycleGAN on unpaired folders (its data in
    ``<run dir>/../data``), logging to CSV and to an offline W&B run, trained once for this module. Tests read its
    outputs and never write into it."""
    root = tmp_path_factory.mktemp("cyclegan_unpaired")
    data_dir = _unpaired_folders(root / "data")
    wandb_dir = root / "wandb"
    env = cli_env(
        root, home=root / "home", WANDB_DIR=str(wandb_dir), WANDB_CACHE_DIR=str(wandb_dir / "cache"),
        WANDB_CONFIG_DIR=str(wandb_dir / "config"), WANDB_DATA_DIR=str(wandb_dir / "data"),
    )  # fmt: skip
    run_dir = root / "run"
    run_cli("train", *_tiny_cyclegan_overrides("unpaired", data_dir, random_inception_weights), "logger=[csv,wandb]",
            f"hydra.run.dir={run_dir}", env=env, timeout=300)  # fmt: skip
    return run_dir


@pytest.mark.parametrize("layout", ["unpaired", "paired", "unpaired-ddp"])
def test_cyclegan_trains_on_folders(
    layout: str, tmp_path: Path, random_inception_weights: Path, request: pytest.FixtureRequest
) -> None:
    if layout == "unpaired":
        run_dir = request.getfixturevalue("unpaired_run")
    else:
        if layout == "unpaired-ddp":
            data_dir = _unpaired_folders(tmp_path / "data")
        else:
            data_dir = write_aligned_pairs(tmp_path / "data", n_train=8, n_val=3, size=40)
        run_dir = tmp_path / "run"
        # Under DDP the global batch of 2 gives each process the official batch of 1.
        ddp = ("trainer=ddp_cpu", "data.batch_size=2", *replica_overrides(tmp_path / "replicas"))
        extra = ddp if layout.endswith("ddp") else ()
        data = "unpaired" if layout.startswith("unpaired") else "paired"
        run_cli("train", *_tiny_cyclegan_overrides(data, data_dir, random_inception_weights), *extra,
                f"hydra.run.dir={run_dir}", env=cli_env(tmp_path), timeout=300)  # fmt: skip

    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3
    if layout.endswith("ddp"):  # both ranks hold identical generators and discriminators
        assert assert_replicas_identical(tmp_path / "replicas")["batch_sizes"] == [1, 1, 1]
    model = load_model(run_dir / "checkpoints" / "last.ckpt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert model.translate(x, "AtoB").shape == x.shape and model.translate(x, "BtoA").shape == x.shape
    sheets = sorted(p.name for p in (run_dir / "translations").glob("step_*.png"))
    assert sheets == ["step_0000000.png", "step_0000002.png", "step_0000003.png"]
    sheet = decode_png(read_file(str(run_dir / "translations" / "last.png")))
    assert sheet.shape[-1] == 6 * 32 + 7 * 2  # real_A | fake_B | rec_A | real_B | fake_A | rec_B
    _, rows = read_rows(run_dir)
    logged = {key for row in rows for key, value in row.items() if value}
    expected = {"loss_g_a2b", "loss_g_b2a", "loss_cycle_a", "loss_cycle_b", "loss_idt_a", "loss_idt_b", "loss_d_a",
                "loss_d_b", "loss_g", "lr"}  # fmt: skip
    assert {f"train/{name}" for name in expected} <= logged
    assert "val/fid_inception" in logged


def _same_images(ours: Path, theirs: Path) -> None:
    """The same file names below both folders, and the same images up to rounding."""
    names = sorted(p.relative_to(ours) for p in ours.rglob("*.png"))
    assert names and names == sorted(p.relative_to(theirs) for p in theirs.rglob("*.png"))
    for name in names:
        a, b = (decode_png(read_file(str(folder / name))).int() for folder in (ours, theirs))
        assert (a - b).abs().max() <= 1, name


def test_translate_a_folder_from_a_checkpoint_and_from_an_official_file(
    unpaired_run: Path, tmp_path: Path, entry_point: Callable[..., EntryPointRun]
) -> None:
    data_dir = unpaired_run.parent / "data"
    ckpt = unpaired_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "out"
    # The command itself once; the other translations run its body in this process.
    run_cli("translate", f"ckpt={ckpt}", f"input={data_dir / 'testA'}", f"output={out}", "direction=AtoB",
            "image_size=32", env=cli_env(tmp_path))  # fmt: skip
    inputs = sorted(p.relative_to(data_dir / "testA") for p in (data_dir / "testA").rglob("*.png"))
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == inputs

    def translate(weights: Path, folder: str, output: Path, *extra: str) -> None:
        run = entry_point("translate", f"ckpt={weights}", f"input={data_dir / folder}", f"output={output}",
                          "image_size=32", *extra)  # fmt: skip
        assert run.code == 0, run.err[-3000:]

    # The same generator saved as the official code saves it (a plain state dict) gives the same images.
    model = load_model(ckpt)
    official = tmp_path / "latest_net_G_A.pth"
    torch.save(model.generator_a2b.state_dict(), official)
    translate(official, "testA", tmp_path / "out_official")
    _same_images(out, tmp_path / "out_official")

    # The B -> A generator: as the official code names it, with the default direction (the file's own), and
    # renamed, with direction=BtoA saying which way it translates; both equal the checkpoint's BtoA.
    out_b = tmp_path / "out_b"
    translate(ckpt, "testB", out_b, "direction=BtoA")
    torch.save(model.generator_b2a.state_dict(), tmp_path / "latest_net_G_B.pth")
    torch.save(model.generator_b2a.state_dict(), tmp_path / "zebra2horse.pth")
    for ckpt_b, extra in (("latest_net_G_B.pth", ()), ("zebra2horse.pth", ("direction=BtoA",))):
        translate(tmp_path / ckpt_b, "testB", tmp_path / f"out_{ckpt_b}", *extra)
        _same_images(out_b, tmp_path / f"out_{ckpt_b}")

    # A mistake ends the command with status 1 and the ``error:`` line last on stderr (the messages themselves:
    # tests/unit/test_mistakes.py).
    proc = run_cli("translate", f"ckpt={ckpt}", f"input={tmp_path / 'none'}", f"output={out}",
                   env=cli_env(tmp_path), check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: input=")


def test_translation_table_goes_to_wandb(unpaired_run: Path) -> None:
    runs = list(unpaired_run.glob("wandb/offline-run-*"))
    assert len(runs) == 1
    tables = sorted(runs[0].glob("files/media/table/translation_table_*.table.json"))
    assert len(tables) >= 3  # steps 0, 2 and 3
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    assert len(table["data"]) == 2  # one row per example (debug=smoke shows 2)
