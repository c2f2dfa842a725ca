"""The history of generated images that CycleGAN's discriminators train on (Shrivastava et al. 2017)."""

from __future__ import annotations

import torch


class ImagePool:
    """Keeps up to ``size`` generated images; :meth:`query` returns the batch D should see.

    While the pool is filling, every image is stored and returned as it is. Once full, each image is
    returned as it is with probability 1/2; otherwise a random stored image is returned in its place and
    the new one takes that slot (the official CycleGAN rule). ``size=0`` turns the pool off. Draws come
    from ``generator`` (a CPU torch.Generator), so a run is reproducible and the pool can be checkpointed
    with :meth:`state_dict`.
    """

    def __init__(self, size: int = 50, generator: torch.Generator | None = None) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (N, C, H, W), detached; returns a batch of the same shape."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) > 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[slot].to(image.device))
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        stored = torch.cat(self.images).cpu() if self.images else torch.zeros(0)
        return {"images": stored, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        stored = state["images"]
        self.images = [image.unsqueeze(0).to(device) for image in stored] if stored.numel() else []
        self.generator.set_state(state["rng"].clone())
