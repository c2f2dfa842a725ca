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
