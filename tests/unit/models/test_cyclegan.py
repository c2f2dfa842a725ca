"""CycleGAN: the history pool, the learning-rate schedule and the training step, against the official code."""

from __future__ import annotations

import pytest
import torch

from ganzoo.models.image_pool import ImagePool
from ganzoo.models.schedules import linear_decay
from tests import builders
from tests.builders import quiet_trainer
from tests.references.cyclegan import official_lambda_rule


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
    # Detached whatever the size, so D's loss on pooled fakes never reaches G's graph.
    produced = torch.randn(3, 2, 4, 4, requires_grad=True) * 2
    assert not ImagePool(size=0).query(produced).requires_grad
    assert not ImagePool(size=2).query(produced).requires_grad
    pool = ImagePool(size=2, seed=3)
    pool.query(images)
    copy = ImagePool(size=2)
    copy.load_state_dict(pool.state_dict())
    later = torch.randn(5, 2, 4, 4)
    assert torch.equal(copy.query(later), pool.query(later))


def test_training_without_a_pool(tmp_path) -> None:
    """pool_size=0 (D sees this step's fakes) trains: its D update does not backpropagate into G's graph."""
    model = tiny_cyclegan(pool_size=0)
    images = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, images.flip(0)), batch_size=2)
    trainer = quiet_trainer(tmp_path, max_steps=2)
    trainer.fit(model, loader)
    assert trainer.global_step == 2


def tiny_cyclegan(**options):
    """Grey CycleGAN with two residual blocks and two-layer PatchGANs of 8 base channels."""
    return builders.tiny_cyclegan(ngf=8, n_blocks=2, ndf=8, n_layers=2, **options)


def test_training_matches_a_handwritten_official_loop(tmp_path) -> None:
    """Two Lightning iterations equal two iterations of the official optimize_parameters on the same data (the
    plain loop that ``make bench`` times against the module)."""
    import copy

    from torch.utils.data import DataLoader, TensorDataset

    from tests.references.loops import PlainCycleGAN

    torch.manual_seed(0)
    model = tiny_cyclegan()
    # Official names: netG_A maps A to B, netD_A judges B images.
    netG_A, netG_B = copy.deepcopy(model.generator_a2b), copy.deepcopy(model.generator_b2a)
    netD_A, netD_B = copy.deepcopy(model.discriminator_b), copy.deepcopy(model.discriminator_a)
    initial = model.generator_a2b.state_dict()["model.1.weight"].clone()
    real_a, real_b = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    data = DataLoader(TensorDataset(real_a, real_b), batch_size=2)
    trainer = quiet_trainer(tmp_path)
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
