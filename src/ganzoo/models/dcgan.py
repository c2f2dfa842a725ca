"""DCGAN LightningModule: alternating D then G updates with the non-saturating BCE loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.losses import NonSaturatingLoss
from ganzoo.models.base import NoiseToImageGAN


class DCGAN(NoiseToImageGAN):
    """DCGAN trained as in pytorch/examples' ``dcgan``.

    Each batch: one discriminator step on the real batch and a batch of fakes (separate forward passes,
    so batch norm sees real and fake statistics separately, as in the reference), then one generator
    step through the updated discriminator on the same fakes.

    Args:
        generator: maps (N, nz) latents to (N, C, H, W) images in [-1, 1]; must expose ``nz``.
        discriminator: maps images to (N,) logits; None for a sampling-only model (e.g. imported weights).
        lr: Adam learning rate for both networks.
        beta1, beta2: Adam betas.
        real_label: target for real images in the D loss (< 1 for one-sided label smoothing).
        channels_last, compile: speed switches, see :class:`~ganzoo.models.base.GANModule`.
        augment, augment_options: differentiable augmentation of every D input (``none``, ``diffaug``, ``ada``),
            see :class:`~ganzoo.models.base.GANModule`.
    """

    progress_bar_values = ("train/loss_d", "train/loss_g")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        real_label: float = 1.0,
        channels_last: bool = False,
        compile: bool | str = False,
        augment: str | None = "none",
        augment_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(channels_last=channels_last, compile=compile, augment=augment, augment_options=augment_options)
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = generator.nz
        self.loss = NonSaturatingLoss(real_label=real_label)

    def sampling_generator(self) -> nn.Module:
        return self.generator

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        if self.discriminator is None:
            raise ConfigError("this DCGAN was built for sampling only (no discriminator): it cannot be trained")
        betas = (self.hparams.beta1, self.hparams.beta2)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return [opt_g, opt_d]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real = batch[0]
        opt_g, opt_d = self.optimizers()
        fake = self.generator(self.sample_latent(real.shape[0]))

        logits_real = self.discriminator(self.augmented(real))
        self.observe_real(logits_real)
        logits_fake = self.discriminator(self.augmented(fake.detach()))
        loss_d = self.loss.discriminator_real(logits_real) + self.loss.discriminator_fake(logits_fake)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        self.discriminator_step(opt_d)

        with self.frozen(self.discriminator):
            logits_fake_for_g = self.discriminator(self.augmented(fake))
            loss_g = self.loss.generator(logits_fake_for_g)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
        opt_g.step()

        values = {"train/loss_d": loss_d, "train/loss_g": loss_g}
        if self.values_written():
            # D(x), D(G(z)) before and after the D step: the reference's D(x), D(G(z)) pair (logged, not on the
            # bar); computed only when written, as their kernels would cost every iteration host time.
            values["train/d_real"] = torch.sigmoid(logits_real.detach()).mean()
            values["train/d_fake"] = torch.sigmoid(logits_fake.detach()).mean()
            values["train/d_fake_after"] = torch.sigmoid(logits_fake_for_g.detach()).mean()
        self.log_step_values(values)
