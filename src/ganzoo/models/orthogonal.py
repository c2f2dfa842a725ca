"""BigGAN's orthogonal regularisation, applied to gradients in place."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def add_orthogonal_regularization(
    parameters: Iterable[nn.Parameter], strength: float, skip: Iterable[nn.Parameter] = ()
) -> None:
    """Add BigGAN's orthogonal-regularisation gradient to ``.grad`` of every parameter with 2+ dimensions.

    With ``W`` the parameter reshaped to (out, rest), the added gradient is
    ``strength * 2 * ((W W^T) * (1 - I)) W``: the gradient of
    ``strength / 2 * ||W W^T * (1 - I)||_F^2``, BigGAN's variant of orthogonal regularisation that only
    pushes different filters apart and leaves their norms free (Brock et al. 2019, eq. 3; BigGAN-PyTorch
    adds this term to the gradients after the backward pass, which is what this does). Parameters in
    ``skip`` (G's shared class embedding), vectors and scalars, and parameters without a gradient are left out.
    """
    skipped = {id(p) for p in skip}
    for param in parameters:
        if param.dim() < 2 or param.grad is None or id(param) in skipped:
            continue
        w = param.reshape(param.shape[0], -1).float()
        gram = w @ w.t()
        gram.fill_diagonal_(0.0)
        param.grad.add_((2.0 * strength * (gram @ w)).reshape(param.shape).to(param.grad.dtype))
