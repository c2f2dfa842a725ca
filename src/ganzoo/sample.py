"""``python -m ganzoo.sample ckpt=... n=10000 out=samples.npz``: generate images from a checkpoint.

``ckpt`` is a ganzoo checkpoint or a BigGAN-PyTorch generator state dict (``G.pth`` / ``G_ema.pth``, read
weights-only, architecture inferred from the weights). Writes an ``.npz`` with ``x`` (uint8, (n, C, H, W))
and, for class-conditional models, ``y`` (int64, (n,)), and optionally a PNG grid. This is how a
checkpoint's quality is measured from outside ganzoo.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from ganzoo.cli import CONFIG_DIR, check_writable, exit_on_ganzoo_error, require_values
from ganzoo.cpus import set_torch_threads
from ganzoo.errors import ConfigError
from ganzoo.images import from_uint8, save_grid, to_uint8
from ganzoo.loading import load, resolve_device
from ganzoo.sampling import NoiseToImage, check_truncation, generate_in_batches, seeded_inputs

log = logging.getLogger("ganzoo.sample")


def load_sampler(ckpt: str | Path, device: str | torch.device = "cpu") -> NoiseToImage:
    """The noise-to-image model behind ``ckpt`` (any file :func:`ganzoo.loading.load` takes), in eval mode on
    ``device``; a ConfigError pointing to ``ganzoo.translate`` for a translation model."""
    model = load(ckpt, device=device)
    if not isinstance(model, NoiseToImage):
        raise ConfigError(
            f"ckpt={ckpt} is a translation model ({type(model).__name__}), it translates images instead of "
            f"sampling them: use python -m ganzoo.translate ckpt={ckpt} input=<folder> output=<folder>"
        )
    return model


def sample(
    ckpt: str,
    n: int,
    batch_size: int = 500,
    seed: int = 0,
    truncation: float | None = None,
    classes: list[int] | None = None,
    device: str = "auto",
    sampling: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generate ``n`` images from checkpoint ``ckpt``: uint8 (n, C, H, W) on the CPU, and labels (n,) or None.

    The images are those of ``model.generate(n, classes, truncation, seed)``, made ``batch_size`` at a time:
    ``truncation`` applies the truncation trick; ``classes`` restricts the labels to these ids (cycled).
    ``sampling`` holds the model's sampling settings for these images (BigGAN's ``G_eval_mode``,
    ``standing_stats``); None values keep the checkpoint's own. BigGAN-PyTorch files sample in eval mode unless
    told otherwise, as BigGAN-PyTorch's ImageNet recipe (``--G_eval_mode``) does.
    """
    for name, value in (("n", n), ("batch_size", batch_size), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and name != "seed"):
            kind = "an integer" if name == "seed" else "a positive integer"
            raise ConfigError(f"{name}={value!r} is not {kind}: e.g. {name}=100")
    device = resolve_device(device)
    truncation = check_truncation(truncation)
    model = load_sampler(ckpt, device)
    latents, labels = seeded_inputs(model, n, classes, truncation, seed)
    batches = generate_in_batches(model, latents, labels, batch_size, **(sampling or {}))
    return torch.cat([to_uint8(images).cpu() for images, _ in batches]), labels


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
@exit_on_ganzoo_error
def main(cfg: DictConfig) -> None:
    set_torch_threads()
    require_values(cfg, ["ckpt"], "python -m ganzoo.sample ckpt=<run dir>/checkpoints/last.ckpt n=1000 out=samples.npz")
    out = Path(cfg.out)
    if out.suffix != ".npz" or out.is_dir():
        raise ConfigError(f"out={cfg.out} must be a file name ending in .npz: e.g. out=samples.npz")
    if cfg.grid and Path(cfg.grid).suffix.lower() != ".png":
        raise ConfigError(f"grid={cfg.grid} must be a file name ending in .png: e.g. grid=grid.png")
    if cfg.grid and (not isinstance(cfg.grid_n, int) or cfg.grid_n < 1):
        raise ConfigError(f"grid_n={cfg.grid_n!r} must be a positive integer: e.g. grid_n=64")
    # Before generating: a place that cannot be written would otherwise lose every sample at the end.
    check_writable(out, "out")
    if cfg.grid:
        check_writable(cfg.grid, "grid")
    classes = list(cfg.classes) if cfg.classes is not None else None
    sampling = {"G_eval_mode": cfg.G_eval_mode, "standing_stats": cfg.standing_stats}
    x, y = sample(cfg.ckpt, cfg.n, cfg.batch_size, cfg.seed, cfg.truncation, classes, cfg.device, sampling)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"x": x.numpy()} if y is None else {"x": x.numpy(), "y": y.numpy()}
    np.savez(out, **arrays)
    log.info("wrote %d images %s to %s", len(x), tuple(x.shape[1:]), out)
    if cfg.grid:
        save_grid(from_uint8(x[: cfg.grid_n]), cfg.grid)
        log.info("wrote grid %s", cfg.grid)


if __name__ == "__main__":
    main()
