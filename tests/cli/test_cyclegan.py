"""CycleGAN end to end: training on unpaired, paired and DDP folders, translating folders, W&B tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png, read_file

from ganzoo.checkpoint import load_checkpoint_file, load_model
from tests.conftest import QUIET, cli_env, run_cli
from tests.data.writers import write_aligned_pairs, write_unpaired_folders
from tests.replicas import assert_replicas_identical, replica_overrides


def _tiny_cyclegan_overrides(data: str, data_dir, inception_weights) -> tuple[str, ...]:
    return (
        "model=cyclegan", f"data={data}", f"data.data_dir={data_dir}", "data.image_size=32", "data.load_size=36",
        "data.num_workers=0", "model.generator.ngf=8", "model.generator.n_blocks=2", "model.discriminator.ndf=8",
        "metrics=inception", f"metrics.evaluation.extractor.weights_path={inception_weights}",
        "metrics.evaluation.real_split=val", *QUIET,
    )  # fmt: skip


@pytest.mark.parametrize("layout", ["unpaired", "paired", "unpaired-ddp"])
def test_cyclegan_trains_on_folders(layout: str, tmp_path: Path, random_inception_weights: Path) -> None:
    if layout.startswith("unpaired"):
        data_dir = write_unpaired_folders(tmp_path / "data", n_train_a=6, n_train_b=9, n_test_a=3, n_test_b=4)
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
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = {key for row in rows for key, value in row.items() if value}
    expected = {"loss_g_a2b", "loss_g_b2a", "loss_cycle_a", "loss_cycle_b", "loss_idt_a", "loss_idt_b", "loss_d_a",
                "loss_d_b", "loss_g", "lr"}  # fmt: skip
    assert {f"train/{name}" for name in expected} <= logged
    assert "val/fid_inception" in logged


def test_translate_a_folder_from_a_checkpoint_and_from_an_official_file(
    tmp_path: Path, random_inception_weights: Path
) -> None:
    data_dir = write_unpaired_folders(tmp_path / "data")
    run_dir = tmp_path / "run"
    run_cli("train", *_tiny_cyclegan_overrides("unpaired", data_dir, random_inception_weights),
            f"hydra.run.dir={run_dir}", env=cli_env(tmp_path))  # fmt: skip
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    out = tmp_path / "out"
    run_cli("translate", f"ckpt={ckpt}", f"input={data_dir / 'testA'}", f"output={out}", "direction=AtoB",
            "image_size=32", env=cli_env(tmp_path))  # fmt: skip
    inputs = sorted(p.relative_to(data_dir / "testA") for p in (data_dir / "testA").rglob("*.png"))
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == inputs

    # The same generator saved as the official code saves it (a plain state dict) gives the same images.
    model = load_model(ckpt)
    official = tmp_path / "latest_net_G_A.pth"
    torch.save(model.generator_a2b.state_dict(), official)
    out_official = tmp_path / "out_official"
    run_cli("translate", f"ckpt={official}", f"input={data_dir / 'testA'}", f"output={out_official}",
            "image_size=32", env=cli_env(tmp_path))  # fmt: skip
    for name in inputs:
        ours = decode_png(read_file(str(out / name))).int()
        theirs = decode_png(read_file(str(out_official / name))).int()
        assert (ours - theirs).abs().max() <= 1  # the same translation, up to rounding

    # The B -> A generator: as the official code names it, with the default direction (the file's own), and
    # renamed, with direction=BtoA saying which way it translates; both equal the checkpoint's BtoA.
    out_b = tmp_path / "out_b"
    run_cli("translate", f"ckpt={ckpt}", f"input={data_dir / 'testB'}", f"output={out_b}", "direction=BtoA",
            "image_size=32", env=cli_env(tmp_path))  # fmt: skip
    torch.save(model.generator_b2a.state_dict(), tmp_path / "latest_net_G_B.pth")
    torch.save(model.generator_b2a.state_dict(), tmp_path / "zebra2horse.pth")
    for ckpt_b, extra in (("latest_net_G_B.pth", ()), ("zebra2horse.pth", ("direction=BtoA",))):
        out_file = tmp_path / f"out_{ckpt_b}"
        run_cli("translate", f"ckpt={tmp_path / ckpt_b}", f"input={data_dir / 'testB'}", f"output={out_file}",
                "image_size=32", *extra, env=cli_env(tmp_path))  # fmt: skip
        for name in sorted(p.relative_to(out_b) for p in out_b.rglob("*.png")):
            ours = decode_png(read_file(str(out_b / name))).int()
            assert (ours - decode_png(read_file(str(out_file / name))).int()).abs().max() <= 1

    proc = run_cli("translate", f"ckpt={ckpt}", f"input={tmp_path / 'none'}", f"output={out}",
                   env=cli_env(tmp_path), check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: input=")


def test_translation_table_goes_to_wandb(tmp_path: Path, random_inception_weights: Path) -> None:
    data_dir = write_unpaired_folders(tmp_path / "data")
    wandb_dir = tmp_path / "wandb"
    env = cli_env(
        tmp_path, home=tmp_path / "home", WANDB_DIR=str(wandb_dir), WANDB_CACHE_DIR=str(wandb_dir / "cache"),
        WANDB_CONFIG_DIR=str(wandb_dir / "config"), WANDB_DATA_DIR=str(wandb_dir / "data"),
    )  # fmt: skip
    run_dir = tmp_path / "run"
    run_cli("train", *_tiny_cyclegan_overrides("unpaired", data_dir, random_inception_weights), "logger=wandb",
            f"hydra.run.dir={run_dir}", env=env, timeout=240)  # fmt: skip
    runs = list(run_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 1
    tables = sorted(runs[0].glob("files/media/table/translation_table_*.table.json"))
    assert len(tables) >= 3  # steps 0, 2 and 3
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    assert len(table["data"]) == 2  # one row per example (debug=smoke shows 2)
