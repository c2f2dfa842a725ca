"""The truncation trick (Brock et al. 2019): latents drawn from N(0, I) restricted to [-threshold, threshold]."""

from __future__ import annotations

import math

import torch

from ganzoo.errors import ConfigError


def check_truncation(threshold: float | None) -> float | None:
    """``threshold`` as a float, or None; a one-line error for anything but a positive number."""
    if threshold is None:
        return None
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ConfigError(f"truncation={threshold!r} must be a positive threshold such as 0.5, or null for none")
    return float(threshold)


def truncate(z: torch.Tensor, threshold: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Redraw every entry of ``z`` with ``|z| > threshold`` from N(0, 1) until all lie inside the threshold.

    Resampling (rather than clamping or rescaling) keeps each entry distributed as a standard normal
    truncated to [-threshold, threshold], which is what BigGAN's truncation trick means. ``z`` is left
    unchanged; draws come from ``generator`` on the CPU, so a seed gives the same latents on any device.
    """
    threshold = check_truncation(threshold)
    out = z.detach().cpu().clone()
    outside = out.abs() > threshold
    while outside.any():
        out[outside] = torch.randn(int(outside.sum()), generator=generator, dtype=out.dtype)
        outside = out.abs() > threshold
    return out.to(z.device)
