"""The history of generated images that CycleGAN's discriminators train on (Shrivastava et al. 2017)."""

from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Keeps up to ``size`` generated images; :meth:`query` returns the batch D should see.

    While the pool is filling, every image is stored and returned as it is. Once full, each image is
    returned as it is with probability 1/2; otherwise a random stored image is returned in its place and
    the new one takes that slot (the official CycleGAN rule). ``size=0`` turns the pool off.

    The draws come from a Python ``random.Random`` seeded with ``seed`` (the official code draws from Python's
    ``random`` too): a run is reproducible, the pool can be checkpointed with :meth:`state_dict`, and no draw
    is a tensor, so a query never converts a tensor to a Python number.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.random = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (N, C, H, W); returns a detached batch of the same shape (D's update must not reach G)."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.random.random() > 0.5:
                slot = self.random.randrange(self.size)
                out.append(self.images[slot].to(image.device))
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        """The stored images (K, C, H, W) on the CPU and the random state (a tuple of ints)."""
        stored = torch.cat(self.images).cpu() if self.images else torch.zeros(0)
        return {"images": stored, "random": self.random.getstate()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        stored = state["images"]
        self.images = [image.unsqueeze(0).to(device) for image in stored] if stored.numel() else []
        if "random" in state:
            self.random.setstate(_as_state(state["random"]))
        else:
            # Checkpoints from before the pool drew from Python's random hold a torch.Generator state ("rng"):
            # continue from a stream derived from it (the run goes on, though not bit for bit as it would have).
            self.random.seed(int(torch.as_tensor(state["rng"]).to(torch.int64).sum()))


def _as_state(state: Any) -> tuple[Any, ...]:
    """``random.getstate()`` as saved: lists come back where tuples were (e.g. through JSON-like round trips)."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
