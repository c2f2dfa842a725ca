"""CycleGAN: the history pool, the learning-rate schedule, the training step, and end-to-end runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png, read_file

from ganzoo.checkpoint import load_checkpoint_file, load_model
from ganzoo.models.image_pool import ImagePool
from ganzoo.models.schedules import linear_decay
from tests.conftest import QUIET, cli_env, run_cli
from tests.data.writers import write_aligned_pairs, write_unpaired_folders
from tests.replicas import assert_replicas_identical, replica_overrides


def official_lambda_rule(epoch: int, n_epochs: int, n_epochs_decay: int, epoch_count: int) -> float:
    # The official formula, written out from its description: constant, then linear to zero.
    return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)


@pytest.mark.parametrize(("n_epochs", "n_decay", "epoch_count"), [(100, 100, 1), (5, 10, 1), (100, 100, 51)])
def test_linear_decay_matches_the_official_rule(n_epochs: int, n_decay: int, epoch_count: int) -> None:
    factor = linear_decay(n_epochs, n_decay, epoch_count)
    for epoch in (0, 1, n_epochs - 2, n_epochs - 1, n_epochs, n_epochs + n_decay // 2, n_epochs + n_decay - 1):
        assert factor(epoch) == official_lambda_rule(epoch, n_epochs, n_decay, epoch_count)
    # Default recipe: 1.0 for the first 100 epochs (0..99), then 100/101, ..., down to 1/101 at the last.
    if (n_epochs, n_decay, epoch_count) == (100, 100, 1):
        assert factor(99) == 1.0 and factor(100) == pytest.approx(100 / 101) and factor(199) == pytest.approx(1 / 101)


def test_linear_decay_through_lambdalr_per_epoch() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(3, 3))
    rates = []
    for _ in range(6):
        rates.append(opt.param_groups[0]["lr"])
        schedule.step()
    assert rates == pytest.approx([2e-4, 2e-4, 2e-4, 2e-4 * 3 / 4, 2e-4 * 2 / 4, 2e-4 * 1 / 4])


def test_pool_fills_then_swaps_half_of_the_time() -> None:
    pool = ImagePool(size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as they are, all stored
    assert len(pool.images) == 4
    returned_old = 0
    trials = 2000
    for i in range(trials):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(new)
        returned_old += int(out.item() != new.item())
        assert len(pool.images) == 4
    assert 0.45 < returned_old / trials < 0.55  # the official 50% rule


def test_pool_of_size_zero_passes_images_through_and_state_round_trips() -> None:
    images = torch.randn(3, 2, 4, 4)
    assert torch.equal(ImagePool(size=0).query(images), images)
    pool = ImagePool(size=2, seed=3)
    pool.query(images)
    copy = ImagePool(size=2)
    copy.load_state_dict(pool.state_dict())
    later = torch.randn(5, 2, 4, 4)
    assert torch.equal(copy.query(later), pool.query(later))


def tiny_cyclegan(**kwargs):
    import functools

    from ganzoo.models.cyclegan import CycleGAN
    from ganzoo.nets.cyclegan import PatchDiscriminator, ResnetGenerator

    generator = functools.partial(ResnetGenerator, 1, 1, ngf=8, n_blocks=2)
    discriminator = functools.partial(PatchDiscriminator, 1, ndf=8, n_layers=2)
    return CycleGAN(generator, discriminator, **kwargs)


def test_training_matches_a_handwritten_official_loop(tmp_path) -> None:
    """Two Lightning iterations equal two iterations of the official optimize_parameters on the same data (the
    plain loop that ``make bench`` times against the module)."""
    import copy

    import lightning as L
    from bench.plain_loops import PlainCycleGAN
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = tiny_cyclegan()
    # Official names: netG_A maps A to B, netD_A judges B images.
    netG_A, netG_B = copy.deepcopy(model.generator_a2b), copy.deepcopy(model.generator_b2a)
    netD_A, netD_B = copy.deepcopy(model.discriminator_b), copy.deepcopy(model.discriminator_a)
    initial = model.generator_a2b.state_dict()["model.1.weight"].clone()
    real_a, real_b = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    data = DataLoader(TensorDataset(real_a, real_b), batch_size=2)
    trainer = L.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, data)

    # The pools are still filling (50 places), so they return the new fakes, as the official code's do.
    plain = PlainCycleGAN(netG_A, netG_B, netD_A, netD_B, lr=2e-4, beta1=0.5, beta2=0.999, lambda_A=10.0,
                          lambda_B=10.0, lambda_identity=0.5, pool_size=50)  # fmt: skip
    for A, B in zip(real_a.split(2), real_b.split(2), strict=True):
        plain.step((A, B))

    pairs = ((model.generator_a2b, netG_A), (model.generator_b2a, netG_B), (model.discriminator_b, netD_A),
             (model.discriminator_a, netD_B))  # fmt: skip
    for ours, theirs in pairs:
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    # Training moved the weights, so the equality above is not between two untouched copies.
    assert not torch.equal(model.generator_a2b.state_dict()["model.1.weight"], initial)


# ------------------------------------------------------------------------------ end to end


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
