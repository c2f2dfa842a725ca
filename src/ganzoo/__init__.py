"""ganzoo: a PyTorch Lightning model zoo of GANs (DCGAN, CycleGAN, BigGAN).

Python API::

    import ganzoo
    g = ganzoo.load("outputs/train/runs/<date>_<time>/checkpoints/last.ckpt")   # or G_ema.pth, netG_epoch_24.pth, ...
    ganzoo.save_grid(g.generate(16, seed=0), "grid.png")

- :func:`ganzoo.load` -- a model in eval mode from a ganzoo checkpoint or a reference implementation's weights;
  ``generate(n, classes, truncation, seed)`` or ``translate(images, direction)``, images float in [-1, 1].
- :class:`ganzoo.NoiseToImage`, :class:`ganzoo.ImageToImage` -- the two kinds of model, for ``isinstance``.
- :func:`ganzoo.save_grid` -- a batch of images as one PNG grid.
- :func:`ganzoo.to_uint8` -- float images in [-1, 1] as uint8 in [0, 255].

Training, sampling, evaluation and translation also run from the shell: ``python -m ganzoo.train``,
``ganzoo.sample``, ``ganzoo.evaluate``, ``ganzoo.translate``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ganzoo.images import save_grid, to_uint8
    from ganzoo.loading import load
    from ganzoo.sampling import ImageToImage, NoiseToImage

# Loaded on first use, so that `import ganzoo` (and the CLIs, which import ganzoo.*) stay light.
_LAZY = {
    "load": "ganzoo.loading",
    "save_grid": "ganzoo.images",
    "to_uint8": "ganzoo.images",
    "NoiseToImage": "ganzoo.sampling",
    "ImageToImage": "ganzoo.sampling",
}

__all__ = ["__version__", "ImageToImage", "NoiseToImage", "load", "save_grid", "to_uint8"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
