"""The one place where images change representation.

Inside ganzoo images are float tensors in [-1, 1], NCHW. Files, grids and sample
archives hold uint8 in [0, 255]. Every conversion between the two goes through here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] (any shape) -> float32 in [-1, 1], same shape."""
    return x.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any shape) -> uint8 in [0, 255], same shape, on the same device.

    Values outside [-1, 1] are clamped; rounding is to nearest, so
    ``to_uint8(from_uint8(u)) == u`` for every uint8 tensor ``u``.
    """
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def image_grid(x: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile a batch (N, C, H, W) in [-1, 1] into one uint8 image (3 or 1, H', W') on the CPU."""
    if nrow is None:
        nrow = max(1, int(round(x.shape[0] ** 0.5)))
    grid = make_grid(x.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=-1.0)
    if x.shape[1] == 1:
        grid = grid[:1]
    return to_uint8(grid)


def save_image_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write a batch (N, C, H, W) in [-1, 1] as one PNG grid; returns the path."""
    from torchvision.io import write_png

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(image_grid(x, nrow=nrow), str(path))
    return path
