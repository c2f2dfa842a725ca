"""DCGAN LightningModule: one D and one G update per batch, step counting, checkpoint safety."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ganzoo.checkpoint import AtomicCheckpointIO, load_checkpoint_file, save_atomic
from ganzoo.models.dcgan import DCGAN
from tests.builders import quiet_trainer, tiny_dcgan


def fit(model: DCGAN, steps: int, tmp_path: Path) -> L.Trainer:
    data = DataLoader(TensorDataset(torch.rand(32, 1, 16, 16) * 2 - 1, torch.zeros(32)), batch_size=8)
    trainer = quiet_trainer(tmp_path, max_steps=steps)
    trainer.fit(model, data)
    return trainer


def test_each_batch_updates_d_then_g_and_counts_one_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_dcgan()
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer = fit(model, 3, tmp_path)
    assert trainer.global_step == 3  # generator updates, not optimizer steps of both networks
    opt_g, opt_d = (o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers)
    assert all(s["step"] == 3 for s in opt_g.state.values()) and all(s["step"] == 3 for s in opt_d.state.values())
    assert all(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True) if a.dim() > 1)
    assert all(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters(), strict=True) if a.dim() > 1)
    assert all(p.requires_grad for p in model.discriminator.parameters())  # unfrozen after the G step


def test_generator_step_leaves_discriminator_without_gradients() -> None:
    model = tiny_dcgan()
    fake = model.generator(torch.randn(4, 8))
    with model.frozen(model.discriminator):
        model.loss.generator(model.discriminator(fake)).backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.grad is not None for p in model.generator.parameters())


def test_generate_is_per_sample_and_restores_mode() -> None:
    model = tiny_dcgan().train()
    z = torch.randn(6, 8)
    full = model.generate(z=z)
    assert torch.allclose(full[:2], model.generate(z=z[:2]), atol=1e-6)  # eval-mode BN: no batch coupling
    assert model.generator.training


def test_atomic_save_keeps_previous_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    save_atomic({"state_dict": {"w": torch.ones(2)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom mid-save")

    with pytest.raises(RuntimeError, match="boom"):
        save_atomic({"state_dict": {"w": torch.zeros(2)}, "bad": Unpicklable()}, path)
    assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temporary file left behind
    assert isinstance(AtomicCheckpointIO().load_checkpoint(path), dict)


def test_training_matches_a_handwritten_pytorch_examples_loop(tmp_path: Path) -> None:
    """Two Lightning iterations equal two iterations of pytorch/examples' dcgan loop on the same data and z
    (the plain loop that ``make bench`` times against the module)."""
    import copy

    from tests.references.loops import PlainDCGAN

    torch.manual_seed(123)  # the model's noise stream starts from the process seed
    model = tiny_dcgan()
    netG, netD = copy.deepcopy(model.generator), copy.deepcopy(model.discriminator)
    images = torch.rand(16, 1, 16, 16) * 2 - 1
    data = DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=8)
    trainer = quiet_trainer(tmp_path)
    trainer.fit(model, data)

    plain = PlainDCGAN(netG, netD, lr=2e-4, beta1=0.5, beta2=0.999, noise=torch.Generator().manual_seed(123))
    for real in images.split(8):
        plain.step((real, torch.zeros(8)))

    for ours, theirs in ((model.generator, netG), (model.discriminator, netD)):
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), name
