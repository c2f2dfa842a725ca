"""The training iterations of ganzoo's models as plain PyTorch loops: no Lightning, no LightningModule.

Each class is a reference implementation's training iteration written out with torch alone:

* :class:`PlainDCGAN`: pytorch/examples ``dcgan/main.py``;
* :class:`PlainCycleGAN`: junyanz/pytorch-CycleGAN-and-pix2pix ``CycleGANModel.optimize_parameters``;
* :class:`PlainPix2Pix`: the same repository's ``Pix2PixModel.optimize_parameters``;
* :class:`PlainBigGAN`: ajbrock/BigGAN-PyTorch ``train_fns.GAN_training_function`` and its ``ema.update``.

The tests (``test_training_matches_a_handwritten_*``) prove that ganzoo's LightningModules end with the same
weights as these loops on the same data and noise, and ``python -m bench.throughput`` times both on the
same networks, so the benchmark compares the same computation with and without Lightning around it.

What the loops share with ganzoo, and what they do not:

* The networks are passed in (ganzoo.nets classes, built by the caller); the optimizers are the modules'
  (Adam with the same settings, created here).
* The loss formulas are written out as the references write them rather than imported from
  :mod:`ganzoo.losses`, so that the equality tests check those too; they call the same torch functions,
  so the work is the same.
* Reused from ganzoo, each with its own test against the reference's rule: :class:`ImagePool` (CycleGAN's
  history of fakes), :func:`linear_decay` (CycleGAN's schedule), :func:`add_orthogonal_regularization`
  and :class:`ExponentialMovingAverage` (BigGAN).
* Where a reference computes something it then throws away, the loop leaves it out as ganzoo does, so
  the timing compares equal work: pytorch/examples' generator step backpropagates into D's weights as well
  (D is not frozen) and zeroes those gradients before they are used; here D is frozen during G's step, as
  in ganzoo and in the CycleGAN and BigGAN references. The weights are the same either way.
* Latents and labels are drawn on the CPU from ``noise`` (by default seeded with ``torch.initial_seed()``,
  which is how ganzoo's modules seed their stream on rank 0) and moved to the networks' device.
* ``autocast``: a dtype (e.g. ``torch.bfloat16``) runs each iteration under ``torch.autocast``, backward
  passes and optimizer steps included, which is where Lightning's ``bf16-mixed`` puts ganzoo's
  ``training_step``.

Batches are the loader's, already on the networks' device: ``(images, labels)`` for DCGAN and BigGAN,
``(images_A, images_B)`` for CycleGAN and pix2pix.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.models.ema import ExponentialMovingAverage
from ganzoo.models.image_pool import ImagePool
from ganzoo.models.orthogonal import add_orthogonal_regularization
from ganzoo.models.schedules import linear_decay
from ganzoo.sampling import iteration_seed, seeded_dropout


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _default_noise(noise: torch.Generator | None) -> torch.Generator:
    return noise if noise is not None else torch.Generator().manual_seed(torch.initial_seed())


@contextlib.contextmanager
def _precision(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(device.type, dtype=dtype):
            yield


def _requires_grad(nets: Sequence[nn.Module], flag: bool) -> None:
    """The references' ``set_requires_grad`` / ``toggle_grad``."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class PlainDCGAN:
    """pytorch/examples' DCGAN iteration: D on a real and a fake batch, then G through the updated D.

    ``BCEWithLogits`` on D's logits (the examples apply a sigmoid in D and use ``BCELoss``: the same loss,
    computed stably), targets ``real_label`` / 0 for D and 1 for G. Adam(lr, (beta1, beta2)) for each net.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        real_label: float = 1.0,
        noise: torch.Generator | None = None,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.netG, self.netD = generator, discriminator
        self.nz = generator.nz
        self.real_label = real_label
        self.optimizerG = torch.optim.Adam(generator.parameters(), lr=lr, betas=(beta1, beta2))
        self.optimizerD = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(beta1, beta2))
        self.noise = _default_noise(noise)
        self.autocast = autocast
        self.device = _device(generator)

    @staticmethod
    def criterion(logits: torch.Tensor, label: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    def step(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        real = batch[0]
        with _precision(self.device, self.autocast):
            z = torch.randn(real.shape[0], self.nz, generator=self.noise).to(self.device, non_blocking=True)
            fake = self.netG(z)
            # (1) Update D: maximize log(D(x)) + log(1 - D(G(z))). The examples call backward() on each term;
            # one backward of their sum gives the same gradients, and is what ganzoo does.
            errD_real = self.criterion(self.netD(real), self.real_label)
            errD_fake = self.criterion(self.netD(fake.detach()), 0.0)
            errD = errD_real + errD_fake
            self.netD.zero_grad(set_to_none=True)
            errD.backward()
            self.optimizerD.step()

            # (2) Update G: maximize log(D(G(z)))
            _requires_grad([self.netD], False)
            errG = self.criterion(self.netD(fake), 1.0)
            self.netG.zero_grad(set_to_none=True)
            errG.backward()
            _requires_grad([self.netD], True)
            self.optimizerG.step()
        return {"loss_d": errD.detach(), "loss_g": errG.detach()}

    def end_epoch(self) -> None:
        pass


class PlainCycleGAN:
    """The official CycleGAN iteration (``optimize_parameters``), with the official network names.

    ``netG_A``: A -> B, ``netG_B``: B -> A, ``netD_A`` judges B images, ``netD_B`` judges A images (ganzoo's
    ``generator_a2b``, ``generator_b2a``, ``discriminator_b``, ``discriminator_a``). G step with both Ds
    frozen on identity, adversarial and cycle losses; then each D on a real batch and a fake drawn from its
    history pool, loss halved. One Adam for both Gs, one for both Ds; :meth:`end_epoch` steps the linear
    decay schedule, as the official ``update_learning_rate`` does at each epoch end. The pools are seeded as
    ganzoo's (1 for fakes of A, 2 for fakes of B).
    """

    def __init__(
        self,
        netG_A: nn.Module,
        netG_B: nn.Module,
        netD_A: nn.Module,
        netD_B: nn.Module,
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
        autocast: torch.dtype | None = None,
    ) -> None:
        if gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode {gan_mode!r}: lsgan or vanilla")
        self.netG_A, self.netG_B, self.netD_A, self.netD_B = netG_A, netG_B, netD_A, netD_B
        self.gan_mode = gan_mode
        self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
        self.fake_A_pool = ImagePool(pool_size, seed=1)
        self.fake_B_pool = ImagePool(pool_size, seed=2)
        betas = (beta1, beta2)
        self.optimizer_G = torch.optim.Adam(chain(netG_A.parameters(), netG_B.parameters()), lr=lr, betas=betas)
        self.optimizer_D = torch.optim.Adam(chain(netD_A.parameters(), netD_B.parameters()), lr=lr, betas=betas)
        rule = linear_decay(n_epochs, n_epochs_decay, epoch_count)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in (self.optimizer_G, self.optimizer_D)]
        self.autocast = autocast
        self.device = _device(netG_A)

    def criterionGAN(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        if self.gan_mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)

    def backward_D_basic(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss_D = (self.criterionGAN(netD(real), True) + self.criterionGAN(netD(fake.detach()), False)) * 0.5
        loss_D.backward()
        return loss_D

    def step(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        real_A, real_B = batch[0], batch[1]
        with _precision(self.device, self.autocast):
            # forward()
            fake_B = self.netG_A(real_A)
            rec_A = self.netG_B(fake_B)
            fake_A = self.netG_B(real_B)
            rec_B = self.netG_A(fake_A)
            # G_A and G_B
            _requires_grad([self.netD_A, self.netD_B], False)
            self.optimizer_G.zero_grad(set_to_none=True)
            if self.lambda_identity > 0:
                loss_idt_A = F.l1_loss(self.netG_A(real_B), real_B) * self.lambda_B * self.lambda_identity
                loss_idt_B = F.l1_loss(self.netG_B(real_A), real_A) * self.lambda_A * self.lambda_identity
            else:
                loss_idt_A = loss_idt_B = 0
            loss_G_A = self.criterionGAN(self.netD_A(fake_B), True)
            loss_G_B = self.criterionGAN(self.netD_B(fake_A), True)
            loss_cycle_A = F.l1_loss(rec_A, real_A) * self.lambda_A
            loss_cycle_B = F.l1_loss(rec_B, real_B) * self.lambda_B
            loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
            loss_G.backward()
            self.optimizer_G.step()
            # D_A and D_B
            _requires_grad([self.netD_A, self.netD_B], True)
            self.optimizer_D.zero_grad(set_to_none=True)
            loss_D_A = self.backward_D_basic(self.netD_A, real_B, self.fake_B_pool.query(fake_B))
            loss_D_B = self.backward_D_basic(self.netD_B, real_A, self.fake_A_pool.query(fake_A))
            self.optimizer_D.step()
        return {"loss_g": loss_G.detach(), "loss_d_a": loss_D_B.detach(), "loss_d_b": loss_D_A.detach()}

    def end_epoch(self) -> None:
        for scheduler in self.schedulers:
            scheduler.step()


class PlainPix2Pix:
    """The official pix2pix iteration (``optimize_parameters``), with the official names: ``netG`` maps real_A to
    fake_B, ``netD`` judges (input, output) pairs concatenated along the channels.

    ``forward()`` once; D on the fake pair (detached) and then the real pair, loss halved; then G with D frozen on
    the GAN loss of the fake pair plus ``lambda_L1`` times the L1 distance to real_B. Adam for each network (no
    image pool: the official ``pool_size=0``); :meth:`end_epoch` steps the linear decay schedule. The official
    code draws G's dropout masks from the global random state; here, as in ganzoo, from the seed
    ``iteration_seed(run_seed, iteration)`` (the masks are as random, and the equality tests can match them).
    """

    def __init__(
        self,
        netG: nn.Module,
        netD: nn.Module,
        gan_mode: str = "vanilla",
        lambda_L1: float = 100.0,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        epoch_count: int = 1,
        autocast: torch.dtype | None = None,
        run_seed: int | None = None,
    ) -> None:
        if gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode {gan_mode!r}: lsgan or vanilla")
        self.netG, self.netD = netG, netD
        self.run_seed = torch.initial_seed() if run_seed is None else run_seed
        self.iteration = 0
        self.gan_mode = gan_mode
        self.lambda_L1 = lambda_L1
        self.optimizer_G = torch.optim.Adam(netG.parameters(), lr=lr, betas=(beta1, beta2))
        self.optimizer_D = torch.optim.Adam(netD.parameters(), lr=lr, betas=(beta1, beta2))
        rule = linear_decay(n_epochs, n_epochs_decay, epoch_count)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in (self.optimizer_G, self.optimizer_D)]
        self.autocast = autocast
        self.device = _device(netG)

    # The official GANLoss, shared by both models.
    criterionGAN = PlainCycleGAN.criterionGAN

    def step(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        real_A, real_B = batch[0], batch[1]
        with _precision(self.device, self.autocast):
            with seeded_dropout(self.device, iteration_seed(self.run_seed, self.iteration)):
                fake_B = self.netG(real_A)
            self.iteration += 1
            # backward_D
            _requires_grad([self.netD], True)
            self.optimizer_D.zero_grad(set_to_none=True)
            loss_D_fake = self.criterionGAN(self.netD(torch.cat((real_A, fake_B.detach()), 1)), False)
            loss_D_real = self.criterionGAN(self.netD(torch.cat((real_A, real_B), 1)), True)
            loss_D = (loss_D_fake + loss_D_real) * 0.5
            loss_D.backward()
            self.optimizer_D.step()
            # backward_G
            _requires_grad([self.netD], False)
            self.optimizer_G.zero_grad(set_to_none=True)
            loss_G_GAN = self.criterionGAN(self.netD(torch.cat((real_A, fake_B), 1)), True)
            loss_G_L1 = F.l1_loss(fake_B, real_B) * self.lambda_L1
            loss_G = loss_G_GAN + loss_G_L1
            loss_G.backward()
            self.optimizer_G.step()
        return {"loss_g": loss_G.detach(), "loss_d": loss_D.detach()}

    def end_epoch(self) -> None:
        for scheduler in self.schedulers:
            scheduler.step()


class PlainBigGAN:
    """BigGAN-PyTorch's training function: ``num_D_steps`` D updates, one G update, then the EMA of G.

    Each D step accumulates ``num_D_accumulations`` micro-batches, each its own ``batch_size`` slice of the
    loader batch with as many fakes (fresh latents and uniformly drawn classes, generated without gradients);
    D scores fakes and reals in one batch. Hinge loss; ``D_ortho`` / ``G_ortho`` add orthogonal
    regularisation to the gradients (G's shared embedding exempt). The G update accumulates
    ``num_G_accumulations`` micro-batches of ``G_batch_size`` fakes (0: ``batch_size``). With ``ema``, a copy of
    G follows it (decay ``ema_decay`` from iteration ``ema_start``, a plain copy before), updated with the
    iteration count, from 1. Arguments are BigGAN-PyTorch's (and ganzoo's ``BigGAN``'s) names.
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
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
        G_ema: nn.Module | None = None,
        noise: torch.Generator | None = None,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.G, self.D = G, D
        self.dim_z, self.n_classes = G.dim_z, G.n_classes
        self.batch_size = batch_size
        self.G_batch_size = G_batch_size or batch_size
        self.num_D_steps, self.num_D_accumulations = num_D_steps, num_D_accumulations
        self.num_G_accumulations = num_G_accumulations
        self.G_ortho, self.D_ortho = G_ortho, D_ortho
        self.G_optim = torch.optim.Adam(G.parameters(), lr=G_lr, betas=(G_B1, G_B2), eps=adam_eps, weight_decay=0)
        self.D_optim = torch.optim.Adam(D.parameters(), lr=D_lr, betas=(D_B1, D_B2), eps=adam_eps, weight_decay=0)
        self.G_ema: nn.Module | None = None
        self.ema: ExponentialMovingAverage | None = None
        if ema:
            self.G_ema = G_ema if G_ema is not None else copy.deepcopy(G)
            self.G_ema.requires_grad_(False)
            self.ema = ExponentialMovingAverage(G, self.G_ema, ema_decay, ema_start)
        self.noise = _default_noise(noise)
        self.autocast = autocast
        self.device = _device(G)
        self.itr = 0

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``utils.prepare_z_y``: classes first, then latents, from the noise stream."""
        y = torch.randint(self.n_classes, (n,), generator=self.noise).to(self.device, non_blocking=True)
        z = torch.randn(n, self.dim_z, generator=self.noise).to(self.device, non_blocking=True)
        return z, y

    def step(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        if self.n_classes == 1:
            y = torch.zeros_like(y)
        x, y = x.split(self.batch_size), y.split(self.batch_size)
        counter = 0
        self.itr += 1
        with _precision(self.device, self.autocast):
            _requires_grad([self.D], True)
            _requires_grad([self.G], False)
            for _ in range(self.num_D_steps):
                self.D_optim.zero_grad(set_to_none=True)
                for _ in range(self.num_D_accumulations):
                    z, y_fake = self.sample(self.batch_size)
                    with torch.no_grad():
                        G_z = self.G(z, y_fake)
                    D_out = self.D(torch.cat([G_z, x[counter]]), torch.cat([y_fake, y[counter]]))
                    D_fake, D_real = torch.split(D_out, [G_z.shape[0], x[counter].shape[0]])
                    D_loss_real = F.relu(1.0 - D_real).mean()
                    D_loss_fake = F.relu(1.0 + D_fake).mean()
                    ((D_loss_real + D_loss_fake) / self.num_D_accumulations).backward()
                    counter += 1
                if self.D_ortho > 0:
                    add_orthogonal_regularization(self.D.parameters(), self.D_ortho)
                self.D_optim.step()

            _requires_grad([self.D], False)
            _requires_grad([self.G], True)
            self.G_optim.zero_grad(set_to_none=True)
            for _ in range(self.num_G_accumulations):
                z, y_fake = self.sample(self.G_batch_size)
                G_loss = -self.D(self.G(z, y_fake), y_fake).mean()
                (G_loss / self.num_G_accumulations).backward()
            if self.G_ortho > 0:
                shared = getattr(self.G, "shared", None)
                skip = shared.parameters() if isinstance(shared, nn.Module) else ()
                add_orthogonal_regularization(self.G.parameters(), self.G_ortho, skip=skip)
            self.G_optim.step()
            _requires_grad([self.D], True)
        if self.ema is not None:
            self.ema.update(self.itr)
        return {"loss_d_real": D_loss_real.detach(), "loss_d_fake": D_loss_fake.detach(), "loss_g": G_loss.detach()}

    def end_epoch(self) -> None:
        pass
