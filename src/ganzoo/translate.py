"""``python -m ganzoo.translate ckpt=... input=DIR output=DIR direction=AtoB``: translate a folder of images.

``ckpt`` is a ganzoo CycleGAN or pix2pix checkpoint, or an official CycleGAN or pix2pix generator ``.pth`` (loaded
weights-only into ganzoo's generator). Output files keep the input's relative paths and names; batches run on the
GPU when there is one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from ganzoo.cli import CONFIG_DIR, check_writable, exit_on_ganzoo_error, quiet_library_noise, require_values
from ganzoo.cpus import set_torch_threads
from ganzoo.data.folders import list_images
from ganzoo.data.image_file import load_image
from ganzoo.data.transforms import resize_square
from ganzoo.errors import ConfigError, DataError
from ganzoo.images import from_uint8, to_uint8
from ganzoo.loading import load, resolve_device
from ganzoo.models.translation import OneWayTranslator
from ganzoo.sampling import ImageToImage, translate_in_batches

log = logging.getLogger("ganzoo.translate")


def translator(ckpt: str | Path, direction: str | None, device: str | torch.device) -> tuple[ImageToImage, str]:
    """The translation model behind ``ckpt`` on ``device``, and the direction to translate.

    ``ckpt`` is any file :func:`ganzoo.loading.load` takes that holds a translation model. ``direction`` None
    means the model's first direction: AtoB for a ganzoo checkpoint, the file's own for a single generator file
    (BtoA for ``*G_B.pth``, else AtoB); given for a single generator file, it says which way that generator
    translates. A ConfigError for a direction the model does not translate.
    """
    model = load(ckpt, device=device)
    if not isinstance(model, ImageToImage):
        raise ConfigError(f"{ckpt} is a {type(model).__name__} checkpoint, not a translation model: use ganzoo.sample")
    if isinstance(model, OneWayTranslator) and direction is not None:
        # A lone generator's file does not record its direction: the user's word decides, else its name.
        model.direction = direction
    direction = direction or model.directions[0]
    model.source_channels(direction)  # checks the direction against the model's
    return model, direction


def _load(path: Path, channels: int, image_size: int | None, multiple: int) -> torch.Tensor:
    image = load_image(str(path), channels)
    if image_size is not None:
        return resize_square(image, image_size)
    h, w = (max(multiple, side - side % multiple) for side in image.shape[-2:])  # what the generator's strides take
    if (h, w) != tuple(image.shape[-2:]):
        image = torch.nn.functional.interpolate(image[None].float(), size=(h, w), mode="bilinear", antialias=True)[0]
        image = image.round().clamp(0, 255).to(torch.uint8)
    return image


def _save(image: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(image).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else np.ascontiguousarray(array)).save(path)


def translate_folder(
    ckpt: str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    direction: str | None = None,
    image_size: int | None = 256,
    batch_size: int = 8,
    device: str = "auto",
) -> list[Path]:
    """Translate every image under ``input_dir`` into ``output_dir`` (same relative paths); returns the outputs."""
    device = resolve_device(device)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise DataError(f"input={input_dir} is not a folder: pass a folder of images")
    files = list_images(input_dir)
    if not files:
        raise DataError(f"input={input_dir} contains no images: pass a folder of images")
    if output_dir.resolve() == input_dir.resolve():
        raise ConfigError("output= must differ from input=: the translations would overwrite the originals")
    model, direction = translator(ckpt, direction, device)
    channels = model.source_channels(direction)
    size_multiple = getattr(model, "size_multiple", lambda _: 1)(direction)
    # Batches of equal sizes: with image_size=null, images of different sizes go in different batches.
    step = batch_size if image_size is not None else 1
    chunks = [files[start : start + step] for start in range(0, len(files), step)]
    sources = (
        from_uint8(torch.stack([_load(f, channels, image_size, size_multiple) for f in chunk])) for chunk in chunks
    )
    written = []
    for chunk, translated in zip(chunks, translate_in_batches(model, sources, direction), strict=True):
        for source, image in zip(chunk, translated, strict=True):
            target = output_dir / source.relative_to(input_dir)
            _save(image, target)
            written.append(target)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="translate")
@exit_on_ganzoo_error
def main(cfg: DictConfig) -> None:
    quiet_library_noise()
    set_torch_threads()
    require_values(
        cfg,
        ["ckpt", "input", "output"],
        "python -m ganzoo.translate ckpt=<run dir>/checkpoints/last.ckpt input=<image folder> output=<new folder>",
    )
    check_writable(cfg.output, "output", folder=True)
    written = translate_folder(
        cfg.ckpt, cfg.input, cfg.output, cfg.direction, cfg.image_size, cfg.batch_size, cfg.device
    )
    log.info("translated %d images into %s", len(written), cfg.output)


if __name__ == "__main__":
    main()
