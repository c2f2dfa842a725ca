"""BigGAN LightningModule: hinge loss, several D steps per G step, orthogonal regularisation and an EMA generator."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.losses import HingeLoss
from ganzoo.models.base import NoiseToImageGAN
from ganzoo.models.ema import ExponentialMovingAverage
from ganzoo.models.orthogonal import add_orthogonal_regularization
from ganzoo.nets.layers import StoredStatsBatchNorm


def batch_norm_layers(net: nn.Module) -> list[StoredStatsBatchNorm]:
    """The batch-norm layers of ``net`` (plain and class-conditional), in module order."""
    return [m for m in net.modules() if isinstance(m, StoredStatsBatchNorm)]


def _count(value: Any) -> bool:
    """Whether ``value`` is an integer >= 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class BigGAN(NoiseToImageGAN):
    """BigGAN (Brock et al. 2019) trained as ajbrock/BigGAN-PyTorch's ``train_fns.GAN_training_function``.

    One training step is one BigGAN "iteration", and ``trainer.global_step`` counts them:

    1. ``num_D_steps`` discriminator updates. Each accumulates ``num_D_accumulations`` micro-batches of real
       images, each its own equal slice of the loader batch (``model=biggan`` sets ``data.batch_size`` to
       ``batch_size * num_D_steps * num_D_accumulations``, so a slice holds ``batch_size`` images over all
       processes), and as many fakes from fresh latents and uniformly drawn classes. D scores fakes and reals in
       one batch.
    2. One generator update over ``num_G_accumulations`` micro-batches of ``G_batch_size`` fakes.
    3. The EMA generator is updated (a plain copy before ``ema_start``).

    Hinge loss; BigGAN's orthogonal regularisation (``G_ortho`` / ``D_ortho``, G's shared class embedding
    exempt) is added to the gradients before each update. Argument names and defaults are BigGAN-PyTorch's
    command-line defaults; ``ganzoo/conf/model/biggan.yaml`` holds its CIFAR recipe.

    Sampling (callbacks, metrics, ``ganzoo.sample``) uses the EMA generator when ``ema`` and ``use_ema``.
    Its batch norms use, in order of precedence: "standing statistics" re-estimated from ``standing_stats``
    batches of samples (on a copy, once per training step, so training state is untouched); the stored
    running statistics when ``G_eval_mode``; otherwise the statistics of the batch being generated, as
    BigGAN-PyTorch does without ``--G_eval_mode`` (the stored statistics are left unchanged). These three are
    the model's :attr:`sampling_settings`: ``generate(..., G_eval_mode=True)`` overrides one for one call.

    Args:
        generator: :class:`ganzoo.nets.biggan.BigGANGenerator` (``forward(z, y)``, ``dim_z``, ``n_classes``).
        discriminator: :class:`ganzoo.nets.biggan.BigGANDiscriminator`; None for a sampling-only model.
        G_lr, D_lr, G_B1, G_B2, D_B1, D_B2, adam_eps: Adam settings of each network.
        batch_size: real images per D micro-batch, over all DDP processes (each takes ``batch_size / N``); the
            loader's batch must hold ``batch_size * num_D_steps * num_D_accumulations`` of them, which the
            config ``model=biggan`` sets as ``data.batch_size``.
        G_batch_size: fakes per G micro-batch, over all processes; 0 means ``batch_size``.
        num_D_steps, num_D_accumulations, num_G_accumulations: see above.
        G_ortho, D_ortho: orthogonal-regularisation strengths (0 disables).
        ema, ema_decay, ema_start, use_ema: keep an EMA copy of G; sample from it when ``use_ema``.
        G_eval_mode: sample with stored batch-norm statistics instead of batch statistics.
        standing_stats: number of batches for standing statistics at sampling time (0: off; 16 in BigGAN-PyTorch).
        standing_batch_size: batch size of those batches; 0 means ``G_batch_size``.
            These three are the defaults of the sampling settings :meth:`generate` takes.
        channels_last, compile: speed switches, see :class:`~ganzoo.models.base.GANModule`.
        augment, augment_options: differentiable augmentation of every D input (``none``, ``diffaug``, ``ada``),
            see :class:`~ganzoo.models.base.GANModule`.
    """

    progress_bar_values = ("train/loss_d_real", "train/loss_d_fake", "train/loss_g")
    sampling_settings = ("G_eval_mode", "standing_stats", "standing_batch_size")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        G_lr: float = 5e-5,
        D_lr: float = 2e-4,
        G_B1: float = 0.0,
        G_B2: float = 0.999,
        D_B1: float = 0.0,
        D_B2: float = 0.999,
        adam_eps: float = 1e-8,
        batch_size: int = 64,
        G_batch_size: int = 0,
        num_D_steps: int = 2,
        num_D_accumulations: int = 1,
        num_G_accumulations: int = 1,
        G_ortho: float = 0.0,
        D_ortho: float = 0.0,
        ema: bool = False,
        ema_decay: float = 0.9999,
        ema_start: int = 0,
        use_ema: bool = False,
        G_eval_mode: bool = False,
        standing_stats: int = 0,
        standing_batch_size: int = 0,
        channels_last: bool = False,
        compile: bool | str = False,
        augment: str | None = "none",
        augment_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(channels_last=channels_last, compile=compile, augment=augment, augment_options=augment_options)
        for name, value in (
            ("batch_size", batch_size),
            ("num_D_steps", num_D_steps),
            ("num_D_accumulations", num_D_accumulations),
            ("num_G_accumulations", num_G_accumulations),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name}={value!r} must be a positive integer")
        for name, value in (
            ("G_batch_size", G_batch_size),
            ("standing_stats", standing_stats),
            ("standing_batch_size", standing_batch_size),
        ):
            if not _count(value):
                raise ConfigError(f"model.{name}={value!r} must be an integer >= 0")
        if use_ema and not ema:
            raise ConfigError("model.use_ema=true needs model.ema=true (there is no EMA generator to sample from)")
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = generator.dim_z
        self.num_classes = generator.n_classes
        self.loss = HingeLoss()
        self.generator_ema: nn.Module | None = None
        self.ema: ExponentialMovingAverage | None = None
        if ema:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
            self.ema = ExponentialMovingAverage(generator, self.generator_ema, ema_decay, ema_start)
        # ((step, device, generator id, batches, batch size), copy holding standing statistics). A tuple, not a
        # submodule, so the copy is neither trained, checkpointed nor wrapped by DDP.
        self._standing: tuple[tuple[Any, ...], nn.Module] | None = None
        self._first_batch_checked = False

    # ----------------------------------------------------------------------------- sampling
    @property
    def G_batch_size(self) -> int:
        return self.hparams.G_batch_size or self.hparams.batch_size

    def sampling_generator(self) -> nn.Module:
        if self.generator_ema is not None and self.hparams.use_ema:
            return self.generator_ema
        return self.generator

    def resolve_sampling_settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        settings = super().resolve_sampling_settings(given)
        if not isinstance(settings["G_eval_mode"], bool):
            raise ConfigError(f"G_eval_mode={settings['G_eval_mode']!r} must be true or false")
        for name in ("standing_stats", "standing_batch_size"):
            if not _count(settings[name]):
                raise ConfigError(f"{name}={settings[name]!r} must be an integer >= 0: e.g. {name}=16")
        return settings

    def forward_generator(self, net: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        # generate() always passes labels: the given classes, or uniformly drawn ones.
        return net(z, labels)

    @contextmanager
    def sampling_mode(self, net: nn.Module, settings: Mapping[str, Any]) -> Iterator[nn.Module]:
        # Spectral norm in eval mode computes the same weights as in train mode but stores nothing.
        net.eval()
        if settings["standing_stats"]:
            yield self._standing_generator(net, settings["standing_stats"], settings["standing_batch_size"])
            return
        if settings["G_eval_mode"]:
            yield net
            return
        norms = batch_norm_layers(net)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.train()
            m.momentum = 0.0  # normalise with batch statistics, leave the stored ones unchanged
        try:
            yield net
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum

    @torch.no_grad()
    def _standing_generator(
        self, net: nn.Module, batches: int | None = None, batch_size: int | None = None
    ) -> nn.Module:
        """A copy of ``net`` in eval mode whose batch norms hold "standing statistics": the average over
        ``batches`` (default ``standing_stats``) batches of ``batch_size`` (default ``standing_batch_size``, 0:
        ``G_batch_size``) fresh samples (BigGAN-PyTorch's ``accumulate_standing_stats``). Made at most once per
        training step and setting; ``net`` itself is not touched, so training and its EMA are unaffected."""
        batches = self.hparams.standing_stats if batches is None else batches
        size = (self.hparams.standing_batch_size if batch_size is None else batch_size) or self.G_batch_size
        key = (self.global_step, self.device, id(net), batches, size)
        if self._standing is not None and self._standing[0] == key:
            return self._standing[1]
        standing = copy.deepcopy(net)
        norms = batch_norm_layers(standing)
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
            m.train()
        noise = torch.Generator().manual_seed(0)
        for _ in range(batches):
            standing(self.sample_latent(size, generator=noise), self.sample_labels(size, generator=noise))
        for m, original in zip(norms, batch_norm_layers(net), strict=True):
            m.momentum = original.momentum
        standing.eval()
        self._standing = (key, standing)
        return standing

    # ----------------------------------------------------------------------------- training
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        if self.discriminator is None:
            raise ConfigError("this BigGAN was built for sampling only (no discriminator): it cannot be trained")
        hp = self.hparams
        opt_g = torch.optim.Adam(
            self.generator.parameters(), lr=hp.G_lr, betas=(hp.G_B1, hp.G_B2), eps=hp.adam_eps, weight_decay=0
        )
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=hp.D_lr, betas=(hp.D_B1, hp.D_B2), eps=hp.adam_eps, weight_decay=0
        )
        return [opt_g, opt_d]

    def on_train_start(self) -> None:
        super().on_train_start()
        self._first_batch_checked = False

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # The first batch of a run, on the host before the copy: what holds for it holds for every batch, and a
        # check of every batch would cost each iteration a look at its labels.
        if not self._first_batch_checked:
            self._check_first_batch(batch)
            self._first_batch_checked = True
        return batch

    def _check_first_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Refuse, in one line naming the key to set, a loader batch that cannot feed this recipe: one whose size
        is not the ``batch_size * num_D_steps * num_D_accumulations`` of the model (``model=biggan`` sets
        ``data.batch_size`` so; a ``data.batch_size=`` override or a hand-made DataLoader can differ), or
        unlabelled data for a class-conditional model."""
        hp = self.hparams
        micro = hp.num_D_steps * hp.num_D_accumulations
        world_size = self.trainer.world_size if self._trainer is not None else 1
        self.split_over_processes(hp.batch_size, "batch_size")  # each process needs whole micro-batches
        got, needed = len(batch[0]), hp.batch_size * micro
        if got * world_size != needed:
            raise ConfigError(
                f"BigGAN got {got} real images per iteration and process but needs batch_size * num_D_steps * "
                f"num_D_accumulations = {hp.batch_size} * {hp.num_D_steps} * {hp.num_D_accumulations} = {needed} "
                f"over all processes ({needed // world_size} per process): set model.batch_size and leave "
                "data.batch_size to the model config (model=biggan sets it to that product)"
            )
        if self.num_classes > 1 and bool((batch[1] < 0).any()):
            raise ConfigError(
                "BigGAN is class-conditional but the data has no labels: use a labelled dataset "
                "(class subfolders) or model.generator.n_classes=1 for unconditional training"
            )

    def _real_batches(self, batch: tuple[torch.Tensor, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's loader batch cut into the ``num_D_steps * num_D_accumulations`` equal (images, labels)
        micro-batches of the D steps, in order."""
        images, labels = batch[0], batch[1]
        micro = self.hparams.num_D_steps * self.hparams.num_D_accumulations
        if len(images) % micro:  # the first batch is checked whole: this is a short last batch
            raise ConfigError(
                f"BigGAN got a short batch of {len(images)} real images, which does not split into "
                f"num_D_steps * num_D_accumulations = {micro} equal D micro-batches: set data.drop_last=true"
            )
        if self.num_classes == 1:
            labels = torch.zeros_like(labels)  # one class: unconditional data (labels -1) is fine
        size = len(images) // micro
        return list(zip(images.split(size), labels.split(size), strict=True))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        G, D = self.generator, self.discriminator
        reals = iter(self._real_batches(batch))

        with self.frozen(G):
            for _ in range(hp.num_D_steps):
                opt_d.zero_grad(set_to_none=True)
                for _ in range(hp.num_D_accumulations):
                    real, real_labels = next(reals)
                    fake_labels = self.sample_labels(len(real))
                    with torch.no_grad():
                        fake = G(self.sample_latent(len(real)), fake_labels)
                    scores = D(self.augmented(torch.cat([fake, real])), torch.cat([fake_labels, real_labels]))
                    scores_fake, scores_real = scores.split([len(fake), len(real)])
                    self.observe_real(scores_real)
                    loss_real = self.loss.discriminator_real(scores_real)
                    loss_fake = self.loss.discriminator_fake(scores_fake)
                    self.manual_backward((loss_real + loss_fake) / hp.num_D_accumulations)
                if hp.D_ortho > 0:
                    add_orthogonal_regularization(D.parameters(), hp.D_ortho)
                self.discriminator_step(opt_d)

        with self.frozen(D):
            opt_g.zero_grad(set_to_none=True)
            G_batch_size = self.split_over_processes(self.G_batch_size, "G_batch_size")
            for _ in range(hp.num_G_accumulations):
                labels = self.sample_labels(G_batch_size)
                fake = G(self.sample_latent(G_batch_size), labels)
                loss_g = self.loss.generator(D(self.augmented(fake), labels))
                self.manual_backward(loss_g / hp.num_G_accumulations)
            if hp.G_ortho > 0:
                shared = getattr(G, "shared", None)
                add_orthogonal_regularization(G.parameters(), hp.G_ortho, skip=shared.parameters() if shared else ())
        opt_g.step()  # advances global_step: one BigGAN iteration done
        if self.ema is not None:
            self.ema.update(self.global_step)

        self.log_step_values({"train/loss_d_real": loss_real, "train/loss_d_fake": loss_fake, "train/loss_g": loss_g})

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._standing = None
