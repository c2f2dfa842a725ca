"""BigGAN's training recipe: EMA, orthogonal regularisation, truncation, sampling modes, and the training step
against a hand-written BigGAN-PyTorch iteration."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.models.biggan import BigGAN, batch_norm_layers
from ganzoo.models.ema import ExponentialMovingAverage
from ganzoo.models.orthogonal import add_orthogonal_regularization
from ganzoo.sampling import truncate
from tests.builders import quiet_trainer, tiny_biggan

NUM_CLASSES = 3


# ------------------------------------------------------------------------------------------------- EMA


def test_ema_copies_before_start_then_averages() -> None:
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = copy.deepcopy(source)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(1.0)  # the average starts elsewhere, so copying is visible
    ema = ExponentialMovingAverage(source, target, decay=0.9, start=3)

    def train_step() -> None:
        with torch.no_grad():
            for p in source.parameters():
                p.add_(torch.randn_like(p))
        source(torch.randn(8, 3))  # moves the batch-norm buffers too

    for step in (1, 2):
        train_step()
        ema.update(step)
        for (name, a), b in zip(target.state_dict().items(), source.state_dict().values(), strict=True):
            assert torch.equal(a, b), (step, name)

    previous = {k: v.clone() for k, v in target.state_dict().items()}
    train_step()
    ema.update(3)
    for name, value in target.state_dict().items():
        current = source.state_dict()[name]
        if value.is_floating_point():
            expected = 0.9 * previous[name] + 0.1 * current
            assert torch.allclose(value, expected, atol=1e-7), name
            assert not torch.equal(value, current), name
        else:  # num_batches_tracked
            assert torch.equal(value, current)


# ----------------------------------------------------------------------------------- orthogonal regularisation


def test_orthogonal_regularization_is_the_gradient_of_biggans_penalty() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3)
    vector = nn.Parameter(torch.randn(5))
    skipped = nn.Parameter(torch.randn(4, 6))
    strength = 1e-2

    w = conv.weight.detach().clone().requires_grad_(True)
    matrix = w.reshape(5, -1)
    off_diagonal = (matrix @ matrix.t()) * (1 - torch.eye(5))
    (strength / 2 * off_diagonal.pow(2).sum()).backward()

    start = torch.randn_like(conv.weight)
    conv.weight.grad = start.clone()
    vector.grad = torch.zeros(5)
    skipped.grad = torch.zeros(4, 6)
    add_orthogonal_regularization([conv.weight, vector, skipped], strength, skip=[skipped])
    assert torch.allclose(conv.weight.grad - start, w.grad, atol=1e-6)
    assert (w.grad.abs() > 0).any()
    assert torch.equal(vector.grad, torch.zeros(5)) and torch.equal(skipped.grad, torch.zeros(4, 6))


# ------------------------------------------------------------------------------------------- truncation


def test_truncation_redraws_only_entries_outside_the_threshold() -> None:
    z = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    out = truncate(z, 0.5, torch.Generator().manual_seed(1))
    assert out.abs().max() <= 0.5
    inside = z.abs() <= 0.5
    assert torch.equal(out[inside], z[inside]) and not torch.equal(out, z)
    assert torch.equal(out, truncate(z, 0.5, torch.Generator().manual_seed(1)))
    # Redrawn entries follow the truncated normal: spread out over the interval, not piled at its ends.
    redrawn = out[~inside]
    assert redrawn.abs().mean() == pytest.approx(0.24, abs=0.03)
    for bad in (0, -1.0, float("nan"), "x"):
        with pytest.raises(ConfigError, match="positive threshold"):
            truncate(z, bad)


def test_generate_with_truncation_uses_truncated_latents() -> None:
    torch.manual_seed(0)
    model = tiny_biggan(G_eval_mode=True)
    z = model.sample_latent(6, generator=torch.Generator().manual_seed(0), truncation=0.3)
    assert z.abs().max() <= 0.3
    labels = torch.arange(6) % NUM_CLASSES
    truncated = model.generate(z=z * 5, labels=labels, truncation=0.3)
    assert not torch.equal(truncated, model.generate(z=z * 5, labels=labels))
    assert torch.equal(truncated, model.generate(z=z * 5, labels=labels, truncation=0.3))


# ------------------------------------------------------------------------------------------- sampling modes


def _stored(net: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in batch_norm_layers(net) for t in (m.stored_mean, m.stored_var)]


def _train_generator_a_little(model: BigGAN) -> None:
    """Move the stored statistics away from their initial values, as training does."""
    model.generator.train()
    with torch.no_grad():
        for _ in range(3):
            model.generator(torch.randn(8, 16) * 2 + 1, torch.randint(NUM_CLASSES, (8,)))


def test_eval_mode_sampling_uses_stored_statistics() -> None:
    torch.manual_seed(0)
    model = tiny_biggan(G_eval_mode=True)
    _train_generator_a_little(model)
    before = _stored(model.generator)
    z, labels = torch.randn(6, 16), torch.arange(6) % NUM_CLASSES
    images = model.generate(z=z, labels=labels)
    # Batch-independent up to convolution rounding, which depends on the batch size and thread count (~2e-6);
    # batch statistics differ by more than 1e-4 (the test above).
    assert torch.allclose(model.generate(z=z[:2], labels=labels[:2]), images[:2], atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, _stored(model.generator), strict=True))
    assert model.generator.training  # the mode is restored


def test_batch_statistics_sampling_leaves_stored_statistics_alone() -> None:
    torch.manual_seed(0)
    model = tiny_biggan(G_eval_mode=False)
    _train_generator_a_little(model)
    before = _stored(model.generator)
    z, labels = torch.randn(6, 16), torch.arange(6) % NUM_CLASSES
    images = model.generate(z=z, labels=labels)
    assert all(torch.equal(a, b) for a, b in zip(before, _stored(model.generator), strict=True))
    # Batch statistics: an image depends on its batch, as in BigGAN-PyTorch without --G_eval_mode.
    assert not torch.allclose(model.generate(z=z[:2], labels=labels[:2]), images[:2], atol=1e-4)
    witness = copy.deepcopy(model.generator).train()
    with torch.no_grad():
        assert torch.allclose(images, witness(z, labels).clamp(-1, 1), atol=1e-6)


def test_standing_statistics_are_estimated_on_a_copy_once_per_step() -> None:
    torch.manual_seed(0)
    model = tiny_biggan(standing_stats=4, standing_batch_size=16)
    _train_generator_a_little(model)
    before = _stored(model.generator)
    z, labels = torch.randn(6, 16), torch.arange(6) % NUM_CLASSES
    images = model.generate(z=z, labels=labels)
    assert all(torch.equal(a, b) for a, b in zip(before, _stored(model.generator), strict=True))
    standing = model._standing_generator(model.generator)
    assert standing is model._standing_generator(model.generator)  # cached within the step
    assert not all(torch.equal(a, b) for a, b in zip(before, _stored(standing), strict=True))
    with torch.no_grad():
        assert torch.allclose(images, standing.eval()(z, labels).clamp(-1, 1), atol=1e-6)
    # Batch-independent up to convolution rounding, which depends on the batch size and thread count (~2e-6);
    # batch statistics differ by more than 1e-4 (the test above).
    assert torch.allclose(model.generate(z=z[:2], labels=labels[:2]), images[:2], atol=1e-5)


def test_class_mixtures_interpolate_the_class_embedding() -> None:
    torch.manual_seed(0)
    model = tiny_biggan(G_eval_mode=True)
    z = torch.randn(1, 16).repeat(3, 1)
    one_hot = F.one_hot(torch.tensor([0, 2, 0]), NUM_CLASSES).float()
    one_hot[2] = torch.tensor([0.5, 0.0, 0.5])
    mixed = model.generate(z=z, labels=one_hot)
    by_id = model.generate(z=z[:2], labels=torch.tensor([0, 2]))
    assert torch.allclose(mixed[:2], by_id, atol=1e-6)
    assert not torch.allclose(mixed[2], mixed[0], atol=1e-3) and not torch.allclose(mixed[2], mixed[1], atol=1e-3)


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="use_ema=true needs model.ema=true"):
        tiny_biggan(use_ema=True, ema=False)
    with pytest.raises(ConfigError, match="num_D_steps=0 must be a positive integer"):
        tiny_biggan(num_D_steps=0)
    model = tiny_biggan(batch_size=4, num_D_steps=2)
    # The run's first loader batch is checked against the recipe (a data.batch_size override, a hand-made loader).
    with pytest.raises(
        ConfigError,
        match=r"needs batch_size \* num_D_steps .* = 8 over all processes \(8 per process\): set model.batch_size",
    ):
        model.on_before_batch_transfer((torch.zeros(6, 1, 32, 32), torch.zeros(6, dtype=torch.int64)), 0)
    with pytest.raises(ConfigError, match="the data has no labels"):
        model.on_before_batch_transfer((torch.zeros(8, 1, 32, 32), torch.full((8,), -1)), 0)
    # Later batches are cut as they come: a short last batch that does not split into the D steps is refused.
    with pytest.raises(ConfigError, match="does not split into num_D_steps .* set data.drop_last=true"):
        model._real_batches((torch.zeros(5, 1, 32, 32), torch.zeros(5, dtype=torch.int64)))
    reals = model._real_batches((torch.arange(6.0).view(6, 1, 1, 1), torch.arange(6)))
    assert [labels.tolist() for _, labels in reals] == [[0, 1, 2], [3, 4, 5]]


# ------------------------------------------------------------------------- the training step, by hand


def test_training_matches_a_handwritten_biggan_iteration(tmp_path) -> None:
    """Three Lightning iterations equal three iterations of BigGAN-PyTorch's GAN_training_function (D steps on
    their own real slices, accumulation, hinge loss, ortho reg) followed by its EMA update, on the same noise (the
    plain loop that ``make bench`` times against the module)."""
    from torch.utils.data import DataLoader, TensorDataset

    from tests.references.loops import PlainBigGAN

    batch, d_steps, d_acc, g_acc, iterations = 4, 2, 2, 2, 3
    settings = dict(
        G_lr=1e-3, D_lr=2e-3, batch_size=batch, G_batch_size=3, num_D_steps=d_steps, num_D_accumulations=d_acc,
        num_G_accumulations=g_acc, G_ortho=1e-3, D_ortho=1e-3, ema=True, ema_decay=0.9, ema_start=2, use_ema=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = tiny_biggan(**settings)
    G, D = copy.deepcopy(model.generator), copy.deepcopy(model.discriminator)
    G_ema = copy.deepcopy(model.generator)
    per_iteration = batch * d_steps * d_acc
    reals = torch.rand(iterations * per_iteration, 1, 32, 32) * 2 - 1
    classes = torch.randint(NUM_CLASSES, (iterations * per_iteration,))
    trainer = quiet_trainer(tmp_path, max_steps=iterations)
    trainer.fit(model, DataLoader(TensorDataset(reals, classes), batch_size=per_iteration))
    assert trainer.global_step == iterations

    noise = torch.Generator().manual_seed(0)  # the model's stream: the process seed plus rank 0
    plain = PlainBigGAN(G, D, G_ema=G_ema, noise=noise, **{k: v for k, v in settings.items() if k != "use_ema"})
    G.train(), D.train()
    for x, y in zip(reals.split(per_iteration), classes.split(per_iteration), strict=True):
        plain.step((x, y))

    pairs = ((model.generator, G), (model.discriminator, D), (model.generator_ema, G_ema))
    for ours, theirs in pairs:
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    # The EMA copy averaged (decay 0.9 from iteration 2), so it is not the trained generator itself.
    assert not torch.allclose(model.generator_ema.linear.weight, model.generator.linear.weight)


def test_bf16_autocast_trains_with_float32_spectral_norm(tmp_path) -> None:
    """Lightning's bf16-mixed precision (CPU autocast here, the same code path as on a GPU)."""
    from torch.utils.data import DataLoader, TensorDataset

    from ganzoo.nets.layers import SpectralNorm

    torch.manual_seed(0)
    model = tiny_biggan(batch_size=4, num_D_steps=2, ema=True, use_ema=True)
    data = TensorDataset(torch.rand(16, 1, 32, 32) * 2 - 1, torch.randint(NUM_CLASSES, (16,)))
    before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    trainer = quiet_trainer(tmp_path, precision="bf16-mixed")
    trainer.fit(model, DataLoader(data, batch_size=8))
    assert trainer.global_step == 2
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    layers = [m for m in model.modules() if isinstance(m, SpectralNorm)]
    assert layers and all(u.dtype == torch.float32 for m in layers for u in m.singular_vectors)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert not torch.equal(before["linear.weight"], model.generator.state_dict()["linear.weight"])
