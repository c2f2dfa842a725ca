"""pix2pix LightningModule: paired translation with a conditional GAN and an L1 loss (Isola et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.data.translation import check_direction
from ganzoo.errors import ConfigError
from ganzoo.losses import adversarial_loss
from ganzoo.models.base import GANModule
from ganzoo.models.schedules import linear_decay_schedules
from ganzoo.models.translation import translate_with
from ganzoo.sampling import iteration_seed, seeded_dropout


class Pix2Pix(GANModule):
    """pix2pix trained as in junyanz/pytorch-CycleGAN-and-pix2pix (``--model pix2pix``), defaults included; an
    :class:`~ganzoo.sampling.ImageToImage` model that translates one way (``translate(images)``).

    Networks (the official names in brackets): ``generator`` [netG] maps an input image to its target, a U-Net
    by default; ``discriminator`` [netD] is a conditional PatchGAN: it judges the input and an output (real
    target or translation) concatenated along the channels.

    Each batch ``(real_A, real_B)`` is (input, target) in the translation's direction (the DataModule swaps the
    images for ``data.direction=BtoA``). As the official ``optimize_parameters``: ``fake_B = G(real_A)`` once;
    then the discriminator step on the real pair ``(real_A, real_B)`` and the fake pair ``(real_A, fake_B)``
    (detached), the loss halved; then the generator step (D frozen) on the adversarial loss of the fake pair plus
    ``lambda_L1 * |fake_B - real_B|_1``. The generator's dropout masks come from a seed of the run's seed, the
    iteration and the process (:func:`~ganzoo.sampling.iteration_seed`), so runs resume exactly. No history pool
    (the official ``pool_size=0``). Adam for each network; the learning rate stays for ``n_epochs`` epochs and
    then decays linearly to zero over ``n_epochs_decay`` epochs, stepped at each epoch end.

    Translation at test time follows the official test script, which never calls ``eval()``: the generator runs
    in training mode on one image at a time, so dropout stays active and batch norm uses each image's own
    statistics (the paper's "noise" of pix2pix); the masks come from a seed, so a translation is reproducible.
    ``eval_mode=True`` is the official ``--eval``: stored statistics, no dropout.

    Args:
        generator: factory building the generator; (N, C_in, H, W) -> (N, C_out, H, W) in [-1, 1].
        discriminator: factory building the PatchGAN, taking C_in + C_out channels; pairs -> score maps.
        direction: the direction the DataModule's pairs go (``data.direction``): ``AtoB`` or ``BtoA``. It names the
            one direction :meth:`translate` takes; the batches are already (input, target).
        gan_mode: ``vanilla`` (BCE on logits, the pix2pix default) or ``lsgan`` (MSE).
        lambda_L1: weight of the L1 loss between translation and target.
        eval_mode: translate with the generator in eval mode (the official ``--eval``) instead of the test protocol.
        channels_last, compile: speed switches, see :class:`~ganzoo.models.base.GANModule`.
        augment, augment_options: differentiable augmentation of every D input (``none``, ``diffaug``, ``ada``),
            see :class:`~ganzoo.models.base.GANModule`.
    """

    progress_bar_values = ("train/loss_g", "train/loss_d")

    def __init__(
        self,
        generator: Callable[[], nn.Module],
        discriminator: Callable[[], nn.Module],
        direction: str = "AtoB",
        gan_mode: str = "vanilla",
        lambda_L1: float = 100.0,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        epoch_count: int = 1,
        eval_mode: bool = False,
        channels_last: bool = False,
        compile: bool | str = False,
        augment: str | None = "none",
        augment_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(channels_last=channels_last, compile=compile, augment=augment, augment_options=augment_options)
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.direction = check_direction(direction, "model.direction")
        self.generator = generator()
        self.discriminator = discriminator()
        self.loss = adversarial_loss(gan_mode)

    # ------------------------------------------------------------- ganzoo.sampling.ImageToImage
    @property
    def directions(self) -> tuple[str, ...]:
        """The one direction this model translates (the ``data.direction`` it was trained with)."""
        return (self.direction,)

    def translate(self, images: torch.Tensor, direction: str | None = None, *, seed: int | None = 0) -> torch.Tensor:
        """Translate float input images (N, C_in, H, W) in [-1, 1]: float32 (N, C_out, H, W) in [-1, 1] on the model's
        device. ``direction`` must be the model's own (None: that one). Unless ``eval_mode``, by the official test
        protocol (see the class docstring) with dropout masks from ``seed`` (None: from the global random state)."""
        self._check_direction(direction)
        return translate_with(self.generator, images, self.device, eval_mode=self.hparams.eval_mode, seed=seed)

    def source_channels(self, direction: str | None = None) -> int:
        """The image channels ``translate(images, direction)`` takes."""
        self._check_direction(direction)
        return self.generator.in_channels

    def size_multiple(self, direction: str | None = None) -> int:
        """Image sides ``translate(images, direction)`` takes must be multiples of this."""
        self._check_direction(direction)
        return getattr(self.generator, "size_multiple", 1)

    def _check_direction(self, direction: str | None) -> None:
        if direction is not None and check_direction(direction, "direction") != self.direction:
            raise ConfigError(
                f"this pix2pix model translates {self.direction} only (data.direction={self.direction} in training): "
                f"use direction={self.direction}, or train another model with data.direction={direction}"
            )

    # ----------------------------------------------------------------------- training
    def check_data(self, datamodule: Any) -> None:
        """pix2pix learns from aligned pairs: a ConfigError for a DataModule that is not paired."""
        if not getattr(datamodule, "paired", False):
            name = getattr(datamodule, "name", type(datamodule).__name__)
            raise ConfigError(
                f"model=pix2pix learns from aligned pairs and data={name} is not paired: use a paired dataset, e.g. "
                "data=facades, data=fmnist_edges or data=paired data.data_dir=<folder of A|B images>"
            )

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=betas)
        return [opt_g, opt_d], linear_decay_schedules([opt_g, opt_d], hp.n_epochs, hp.n_epochs_decay, hp.epoch_count)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real_a, real_b = batch[0], batch[1]
        opt_g, opt_d = self.optimizers()
        # Dropout masks from a seed of (run seed, iteration, rank): a resumed run draws the masks the uninterrupted
        # one drew (the global random state is not in checkpoints).
        with seeded_dropout(self.device, iteration_seed(torch.initial_seed(), self.global_step, self.global_rank)):
            fake_b = self.generator(real_a)

        # The fake pair first, as the official backward_D (batch norms in D see the two pairs in that order).
        channels = real_a.shape[1]
        logits_fake = self.discriminator(self.augmented(torch.cat((real_a, fake_b.detach()), 1), channels))
        logits_real = self.discriminator(self.augmented(torch.cat((real_a, real_b), 1), channels))
        self.observe_real(logits_real)
        losses = {
            "loss_d_fake": self.loss.discriminator_fake(logits_fake),
            "loss_d_real": self.loss.discriminator_real(logits_real),
        }
        loss_d = 0.5 * (losses["loss_d_fake"] + losses["loss_d_real"])
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        self.discriminator_step(opt_d)

        with self.frozen(self.discriminator):
            fake_pair = self.augmented(torch.cat((real_a, fake_b), 1), channels)
            losses["loss_g_gan"] = self.loss.generator(self.discriminator(fake_pair))
            losses["loss_g_l1"] = F.l1_loss(fake_b, real_b) * self.hparams.lambda_L1
            loss_g = losses["loss_g_gan"] + losses["loss_g_l1"]
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
        opt_g.step()

        logged: dict[str, torch.Tensor | float] = {f"train/{name}": value for name, value in losses.items()}
        logged["train/loss_d"] = loss_d
        logged["train/loss_g"] = loss_g
        logged["train/lr"] = opt_g.param_groups[0]["lr"]
        self.log_step_values(logged)

    def on_train_epoch_end(self) -> None:
        for schedule in self.lr_schedulers():
            schedule.step()
