"""CycleGAN LightningModule: unpaired translation with adversarial, cycle and identity losses (Zhu et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.data.translation import DIRECTIONS, check_direction
from ganzoo.losses import adversarial_loss
from ganzoo.models.base import GANModule
from ganzoo.models.image_pool import ImagePool
from ganzoo.models.schedules import linear_decay_schedules
from ganzoo.models.translation import translate_with


class CycleGAN(GANModule):
    """CycleGAN trained as in junyanz/pytorch-CycleGAN-and-pix2pix, defaults included; an
    :class:`~ganzoo.sampling.ImageToImage` model (``translate(images, direction)`` both ways).

    Networks (the official names in brackets): ``generator_a2b`` [netG_A] maps domain A to B,
    ``generator_b2a`` [netG_B] maps B to A, ``discriminator_b`` [netD_A] judges domain-B images,
    ``discriminator_a`` [netD_B] judges domain-A images.

    Each batch ``(real_A, real_B)``: first the generator step (discriminators frozen) on
    ``lambda_identity``-weighted identity losses, the adversarial losses and the cycle losses
    ``lambda_A * |G_b2a(G_a2b(A)) - A|_1 + lambda_B * |G_a2b(G_b2a(B)) - B|_1``; then the discriminator step
    on real images and generated images drawn from a history pool of ``pool_size``, each D loss halved.
    One Adam for both generators, one for both discriminators; the learning rate stays for ``n_epochs``
    epochs and then decays linearly to zero over ``n_epochs_decay`` epochs, stepped at each epoch end.

    Args:
        generator: factory building one generator (called twice); (N, C, H, W) -> (N, C, H, W) in [-1, 1].
        discriminator: factory building one PatchGAN discriminator (called twice); images -> score maps.
        gan_mode: ``lsgan`` (MSE, the default) or ``vanilla`` (BCE on logits).
        lambda_A, lambda_B: cycle-loss weights; lambda_identity: identity weight relative to them.
        channels_last, compile: speed switches, see :class:`~ganzoo.models.base.GANModule`.
        augment, augment_options: differentiable augmentation of every D input (``none``, ``diffaug``, ``ada``),
            see :class:`~ganzoo.models.base.GANModule`.
    """

    progress_bar_values = ("train/loss_g", "train/loss_d_a", "train/loss_d_b")
    directions = DIRECTIONS

    def __init__(
        self,
        generator: Callable[[], nn.Module],
        discriminator: Callable[[], nn.Module],
        gan_mode: str = "lsgan",
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        lambda_A: float = 10.0,
        lambda_B: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        epoch_count: int = 1,
        channels_last: bool = False,
        compile: bool | str = False,
        augment: str | None = "none",
        augment_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(channels_last=channels_last, compile=compile, augment=augment, augment_options=augment_options)
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator_a2b = generator()
        self.generator_b2a = generator()
        self.discriminator_a = discriminator()
        self.discriminator_b = discriminator()
        self.loss = adversarial_loss(gan_mode)
        self.fake_a_pool = ImagePool(pool_size, seed=1)
        self.fake_b_pool = ImagePool(pool_size, seed=2)

    # ------------------------------------------------------------- ganzoo.sampling.ImageToImage
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Translate float images (N, C, H, W) in [-1, 1] with the eval-mode generator of ``direction``
        (``"AtoB"`` or ``"BtoA"``); returns float32 (N, C', H, W) in [-1, 1] on the model's device."""
        return translate_with(self._generator(direction), images, self.device)

    def source_channels(self, direction: str = "AtoB") -> int:
        """The image channels ``translate(images, direction)`` takes."""
        return self._generator(direction).in_channels

    def size_multiple(self, direction: str = "AtoB") -> int:
        """Image sides ``translate(images, direction)`` takes must be multiples of this."""
        return getattr(self._generator(direction), "size_multiple", 1)

    def _generator(self, direction: str) -> nn.Module:
        return self.generator_a2b if check_direction(direction, "direction") == "AtoB" else self.generator_b2a

    # ----------------------------------------------------------------------- training
    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        generators = chain(self.generator_a2b.parameters(), self.generator_b2a.parameters())
        discriminators = chain(self.discriminator_a.parameters(), self.discriminator_b.parameters())
        opt_g = torch.optim.Adam(generators, lr=hp.lr, betas=betas)
        opt_d = torch.optim.Adam(discriminators, lr=hp.lr, betas=betas)
        return [opt_g, opt_d], linear_decay_schedules([opt_g, opt_d], hp.n_epochs, hp.n_epochs_decay, hp.epoch_count)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real_a, real_b = batch[0], batch[1]
        hp = self.hparams
        opt_g, opt_d = self.optimizers()

        with self.frozen(self.discriminator_a), self.frozen(self.discriminator_b):
            fake_b = self.generator_a2b(real_a)
            rec_a = self.generator_b2a(fake_b)
            fake_a = self.generator_b2a(real_b)
            rec_b = self.generator_a2b(fake_a)
            losses = {
                "loss_g_a2b": self.loss.generator(self.discriminator_b(self.augmented(fake_b))),
                "loss_g_b2a": self.loss.generator(self.discriminator_a(self.augmented(fake_a))),
                "loss_cycle_a": F.l1_loss(rec_a, real_a) * hp.lambda_A,
                "loss_cycle_b": F.l1_loss(rec_b, real_b) * hp.lambda_B,
            }
            if hp.lambda_identity > 0:
                # G_a2b should leave images already in B alone, and G_b2a those in A.
                losses["loss_idt_b"] = F.l1_loss(self.generator_a2b(real_b), real_b) * hp.lambda_B * hp.lambda_identity
                losses["loss_idt_a"] = F.l1_loss(self.generator_b2a(real_a), real_a) * hp.lambda_A * hp.lambda_identity
            loss_g = sum(losses.values())
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
        opt_g.step()

        losses["loss_d_b"] = self._discriminator_loss(self.discriminator_b, real_b, self.fake_b_pool.query(fake_b))
        losses["loss_d_a"] = self._discriminator_loss(self.discriminator_a, real_a, self.fake_a_pool.query(fake_a))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(losses["loss_d_a"] + losses["loss_d_b"])
        self.discriminator_step(opt_d)

        logged: dict[str, torch.Tensor | float] = {f"train/{name}": value for name, value in losses.items()}
        logged["train/loss_g"] = loss_g
        logged["train/lr"] = opt_g.param_groups[0]["lr"]
        self.log_step_values(logged)

    def _discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # Halved, as in the official code, so D learns at half the rate of G.
        logits_real = discriminator(self.augmented(real))
        self.observe_real(logits_real)
        loss = self.loss.discriminator_real(logits_real) + self.loss.discriminator_fake(
            discriminator(self.augmented(fake))
        )
        return 0.5 * loss

    def on_train_epoch_end(self) -> None:
        for schedule in self.lr_schedulers():
            schedule.step()

    # ----------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # The pools are per process; rank 0's is kept, which resumes exactly in a single process.
        checkpoint["ganzoo"]["image_pools"] = {"a": self.fake_a_pool.state_dict(), "b": self.fake_b_pool.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        pools = checkpoint.get("ganzoo", {}).get("image_pools")
        if pools:
            self.fake_a_pool.load_state_dict(pools["a"], self.device)
            self.fake_b_pool.load_state_dict(pools["b"], self.device)
