"""The one place where images change representation.

Inside ganzoo images are float tensors in [-1, 1], NCHW. Files, grids and sample
archives hold uint8 in [0, 255]. Every conversion between the two goes through here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid

from ganzoo.errors import ConfigError


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] (any shape) -> float32 in [-1, 1], same shape."""
    return x.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any shape) -> uint8 in [0, 255], same shape, on the same device.

    Values outside [-1, 1] are clamped; rounding is to nearest, so
    ``to_uint8(from_uint8(u)) == u`` for every uint8 tensor ``u``. A uint8 tensor is already converted and
    is returned as it is.
    """
    if x.dtype == torch.uint8:
        return x.detach()
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def image_grid(x: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile a batch (N, C, H, W) in [-1, 1] (or uint8) into one uint8 image (3 or 1, H', W') on the CPU.

    ``nrow`` images per row; default a square grid. Padding is black.
    """
    if x.dim() != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = from_uint8(x)
    if nrow is None:
        nrow = max(1, int(round(x.shape[0] ** 0.5)))
    grid = make_grid(x.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=-1.0)
    if x.shape[1] == 1:
        grid = grid[:1]
    return to_uint8(grid)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write a batch (N, C, H, W) in [-1, 1] (or uint8) as one PNG grid, ``nrow`` images per row (default: a
    square grid); creates missing folders and returns the path. For example
    ``save_grid(model.generate(16, seed=0), "grid.png")``."""
    from torchvision.io import write_png

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"save_grid writes PNG files: name the file {path.with_suffix('.png').name}, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(image_grid(images, nrow=nrow), str(path))
    return path
