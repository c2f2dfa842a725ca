"""pix2pix: the official iteration, the test protocol of its translations, its direction and its schedule."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.errors import ConfigError
from tests.builders import quiet_trainer, tiny_pix2pix
from tests.references.loops import PlainPix2Pix


def _pairs(n: int = 4, side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand(n, 1, side, side, generator=generator) * 2 - 1
    return inputs, (inputs.flip(-1) * 0.5).clamp(-1, 1)


@pytest.mark.parametrize("gan_mode", ["vanilla", "lsgan"])
def test_training_matches_a_handwritten_official_loop(tmp_path: Path, gan_mode: str) -> None:
    """Two Lightning iterations equal two iterations of the official optimize_parameters on the same pairs, weight
    for weight and batch-norm statistic for statistic (dropout masks drawn from the same seed)."""
    model = tiny_pix2pix(num_downs=6, ngf=4, ndf=8, n_layers=2, gan_mode=gan_mode)
    netG, netD = copy.deepcopy(model.generator), copy.deepcopy(model.discriminator)
    initial = copy.deepcopy(model.generator.state_dict())
    data = DataLoader(TensorDataset(*_pairs(4, 64)), batch_size=2)
    torch.manual_seed(5)  # the run's seed, from which (with the iteration) the dropout masks are seeded
    quiet_trainer(tmp_path).fit(model, data)

    plain = PlainPix2Pix(netG, netD, gan_mode=gan_mode, run_seed=5)
    for batch in data:
        plain.step(batch)

    for ours, theirs in ((model.generator, netG), (model.discriminator, netD)):
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), name
    # Training moved every weight the equality covers (the dropout level included).
    moved = [name for name, value in model.generator.state_dict().items() if not torch.equal(value, initial[name])]
    assert "model.model.1.model.1.weight" in moved and len(moved) > len(initial) // 2


def test_translation_follows_the_official_test_protocol() -> None:
    """Unless eval_mode: dropout active and each image normalized by its own statistics, reproducible by seed,
    running statistics untouched; eval_mode: the stored statistics and no dropout."""
    model = tiny_pix2pix(num_downs=6, ngf=4)
    images = _pairs(3, 64)[0]
    model.train()
    with torch.no_grad():  # some running statistics, as after training
        model.generator(images)
    model.eval()
    stats = {k: v.clone() for k, v in model.generator.state_dict().items() if "running" in k}

    out = model.translate(images)
    assert out.shape == images.shape and out.dtype == torch.float32 and out.abs().max() <= 1
    assert torch.equal(out, model.translate(images, seed=0))  # the same masks from the same seed
    assert not torch.equal(out, model.translate(images, seed=1))  # dropout is active
    # Each image as a batch of its own: translating it alone gives its row (seeded the same way).
    assert torch.equal(model.translate(images[:1]), out[:1])
    # The official script (train mode, batch of 1, seeded once) on a copy gives the same images.
    official = copy.deepcopy(model.generator).train()
    torch.manual_seed(0)
    with torch.no_grad():
        expected = torch.cat([official(image[None]) for image in images])
    assert torch.equal(out, expected.clamp(-1, 1))
    assert all(torch.equal(v, stats[k]) for k, v in model.generator.state_dict().items() if "running" in k)
    assert not model.generator.training  # the mode is restored

    model.hparams.eval_mode = True
    assert torch.equal(model.translate(images), model.generator.eval()(images).clamp(-1, 1))
    assert torch.equal(model.translate(images, seed=0), model.translate(images, seed=1))


def test_translation_leaves_the_callers_random_state_alone() -> None:
    model = tiny_pix2pix(num_downs=6)
    images = _pairs(2, 64)[0]
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    model.translate(images)
    assert torch.equal(torch.rand(3), expected)


def test_translates_its_own_direction_only() -> None:
    model = tiny_pix2pix(direction="BtoA")
    images = _pairs(1)[0]
    assert model.directions == ("BtoA",) and model.source_channels() == 1
    assert model.translate(images, "BtoA").shape == images.shape
    with pytest.raises(ConfigError, match=r"translates BtoA only .*use direction=BtoA"):
        model.translate(images, "AtoB")
    with pytest.raises(ConfigError, match="use AtoB or BtoA"):
        tiny_pix2pix(direction="sideways")


def test_learning_rate_is_constant_then_decays_linearly_per_epoch(tmp_path: Path) -> None:
    model = tiny_pix2pix(n_epochs=1, n_epochs_decay=2)
    real_a, real_b = _pairs(2)
    rates = []

    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=3)
    from lightning.pytorch.callbacks import LambdaCallback

    trainer.callbacks.append(
        LambdaCallback(on_train_epoch_start=lambda t, m: rates.append(t.optimizers[0].param_groups[0]["lr"]))
    )
    trainer.fit(model, DataLoader(TensorDataset(real_a, real_b), batch_size=2))
    assert rates == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 / 3])


def test_iteration_seeds_depend_on_run_seed_step_and_rank_only() -> None:
    from ganzoo.sampling import iteration_seed

    seeds = {iteration_seed(run, step, rank) for run in (0, 1) for step in range(50) for rank in range(4)}
    assert len(seeds) == 2 * 50 * 4 and all(0 <= s < 2**63 for s in seeds)
    assert iteration_seed(3, 7, 1) == iteration_seed(3, 7, 1)


def test_model_pix2pix_data_facades_is_the_official_recipe(tmp_path: Path) -> None:
    """`python -m ganzoo.train model=pix2pix data=facades` composes scripts/train_pix2pix.sh with the official
    option defaults: unet_256 with batch norm and dropout, the basic D on 6 channels, vanilla GAN + 100 L1, Adam
    2e-4 (0.5, 0.999), 100 + 100 epochs, 286 -> 256 crops with flips, batch 1, label maps -> photos."""
    from hydra.utils import instantiate

    from ganzoo.train import compose_config

    cfg = compose_config(["model=pix2pix", "data=facades"], output_dir=str(tmp_path))
    m, d = cfg.model, cfg.data
    assert (m.gan_mode, m.lambda_L1, m.lr, m.beta1, m.beta2) == ("vanilla", 100.0, 2e-4, 0.5, 0.999)
    assert (m.n_epochs, m.n_epochs_decay, cfg.trainer.max_epochs, cfg.trainer.max_steps) == (100, 100, 200, -1)
    assert (d.image_size, d.load_size, d.flip, d.batch_size, d.channels, d.direction) == (256, 286, True, 1, 3, "BtoA")
    assert m.direction == "BtoA" and not m.eval_mode
    model = instantiate(m, _convert_="all")
    generator, discriminator = model.generator, model.discriminator
    assert (generator.num_downs, generator.ngf, generator.norm, generator.use_dropout) == (8, 64, "batch", True)
    assert (discriminator.in_channels, discriminator.ndf, discriminator.n_layers, discriminator.norm) == (
        6, 64, 3, "batch",
    )  # fmt: skip
    # The official networks' sizes (models/networks.py: define_G unet_256, define_D basic, batch norm).
    assert sum(p.numel() for p in generator.parameters()) == 54_413_955
    assert sum(p.numel() for p in discriminator.parameters()) == 2_768_705
