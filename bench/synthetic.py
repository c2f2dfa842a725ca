"""The bench's data: in-memory synthetic batches, the same on every side of a comparison.

Uniform noise in [-1, 1] of a config's shape and loader batch size, with uniform class labels (or, for the
translation models CycleGAN and pix2pix, pairs of such images), built once and cycled through, so no side decodes
images and loading costs the same everywhere. :func:`data_spec` reads the shape from a composed config;
:func:`loader_for` serves it to the bare Trainer and the plain loop; :class:`bench.trainer_parts.SyntheticDataModule`
serves the same batches to the full stack through ``cfg.data``.

This module loads neither Lightning nor ganzoo: the plain side of the bench imports it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

#: Models that train on ``(A, B)`` image batches rather than ``(images, labels)``.
IMAGE_PAIR_MODELS = ("cyclegan", "pix2pix")
#: Of those, the models that learn from aligned pairs (``Pix2Pix.check_data`` refuses a DataModule that is not
#: ``paired``); uniform noise is as aligned as anything, so the batches are the same either way.
ALIGNED_PAIR_MODELS = ("pix2pix",)


def data_spec(cfg: Any, model: str) -> dict[str, Any]:
    """What the synthetic batches take from a composed config: ``image_size``, ``channels``, ``num_classes``
    (0 for unlabelled data), the loader (global) ``batch_size``, ``pairs`` (A/B batches: CycleGAN and pix2pix)
    and ``paired`` (the pairs stand for aligned ones: pix2pix)."""
    return {
        "image_size": int(cfg.data.image_size),
        "channels": int(cfg.data.channels),
        "num_classes": int(cfg.data.get("num_classes") or 0),
        "batch_size": int(cfg.data.batch_size),
        "pairs": model in IMAGE_PAIR_MODELS,
        "paired": model in ALIGNED_PAIR_MODELS,
    }


def synthetic_batches(
    batch_size: int, channels: int, image_size: int, num_classes: int, pairs: bool, count: int, seed: int = 1234
) -> list[tuple[torch.Tensor, ...]]:
    """``count`` distinct loader batches: ``(A, B)`` image pairs with ``pairs`` (CycleGAN's domains, pix2pix's
    (input, target)), ``(images, labels)`` otherwise; images float (batch_size, channels, image_size, image_size)
    in [-1, 1], labels int64 in [0, max(num_classes, 1))."""
    gen = torch.Generator().manual_seed(seed)
    n, c, s = batch_size, channels, image_size
    batches = []
    for _ in range(count):
        images = torch.rand(n, c, s, s, generator=gen) * 2 - 1
        if pairs:
            batches.append((images, torch.rand(n, c, s, s, generator=gen) * 2 - 1))
        else:
            batches.append((images, torch.randint(max(num_classes, 1), (n,), generator=gen)))
    return batches


class CyclingBatches(Dataset):
    """``length`` loader batches cycling through ``batches``: one epoch is the whole run."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.batches[index % len(self.batches)]


def synthetic_loader(batches: list[tuple[torch.Tensor, ...]], steps: int, pin: bool) -> DataLoader:
    """A loader of ``steps`` ready batches; ``pin``: pinned once, as a loader with pin_memory hands them over."""
    if pin:
        batches = [tuple(t.pin_memory() for t in batch) for batch in batches]
    return DataLoader(CyclingBatches(batches, steps), batch_size=None, shuffle=False, num_workers=0)


def loader_for(spec: dict[str, Any], steps: int, device: torch.device) -> DataLoader:
    """The loader of a :func:`data_spec`'s batches for ``steps`` iterations on ``device``: the batches
    :class:`bench.trainer_parts.SyntheticDataModule` serves with its defaults."""
    batches = synthetic_batches(
        spec["batch_size"], spec["channels"], spec["image_size"], spec["num_classes"], spec["pairs"], min(steps, 8)
    )
    return synthetic_loader(batches, steps, pin=device.type == "cuda")
