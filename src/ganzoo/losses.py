"""Adversarial losses, in one place for every model.

Discriminator outputs are raw logits/scores of any shape; losses average over all elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _bce_with_constant(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class NonSaturatingLoss:
    """The original GAN loss with the non-saturating generator objective (DCGAN).

    D minimises BCE(D(x), real_label) + BCE(D(G(z)), 0); G minimises BCE(D(G(z)), 1). Computed on logits
    with ``binary_cross_entropy_with_logits``, so it is stable and autocast-safe. ``real_label`` < 1 gives
    one-sided label smoothing (Salimans et al. 2016); 1.0 matches pytorch/examples.
    """

    def __init__(self, real_label: float = 1.0) -> None:
        self.real_label = real_label

    def discriminator_real(self, logits_real: torch.Tensor) -> torch.Tensor:
        return _bce_with_constant(logits_real, self.real_label)

    def discriminator_fake(self, logits_fake: torch.Tensor) -> torch.Tensor:
        return _bce_with_constant(logits_fake, 0.0)

    def generator(self, logits_fake: torch.Tensor) -> torch.Tensor:
        return _bce_with_constant(logits_fake, 1.0)


class LeastSquaresLoss:
    """LSGAN (Mao et al. 2017), CycleGAN's default: mean squared error of D's scores to 1 (real) and 0 (fake).

    Same interface as :class:`NonSaturatingLoss`; the generator pushes D's scores of its images towards 1.
    """

    def discriminator_real(self, scores_real: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(scores_real, torch.ones_like(scores_real))

    def discriminator_fake(self, scores_fake: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(scores_fake, torch.zeros_like(scores_fake))

    def generator(self, scores_fake: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(scores_fake, torch.ones_like(scores_fake))


def adversarial_loss(name: str) -> NonSaturatingLoss | LeastSquaresLoss:
    """The loss the reference implementations call ``gan_mode``: ``lsgan`` or ``vanilla`` (BCE on logits)."""
    from ganzoo.errors import ConfigError

    losses = {"lsgan": LeastSquaresLoss, "vanilla": NonSaturatingLoss}
    if name not in losses:
        raise ConfigError(f"unknown gan_mode {name!r}: use lsgan or vanilla")
    return losses[name]()


class HingeLoss:
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN) on D's raw scores.

    D minimises mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))); G minimises -mean(D(G(z))). Same interface as
    :class:`NonSaturatingLoss`.
    """

    def discriminator_real(self, scores_real: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - scores_real).mean()

    def discriminator_fake(self, scores_fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 + scores_fake).mean()

    def generator(self, scores_fake: torch.Tensor) -> torch.Tensor:
        return -scores_fake.mean()
