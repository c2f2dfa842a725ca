"""Decoding one image file of any PIL mode into a uint8 tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ganzoo.errors import DataError

#: Suffixes (lower case) recognised as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

# Transparent pixels often hide arbitrary colours; showing them on white matches how
# viewers display such images.
_BACKGROUND = (255, 255, 255)


class UnreadableImageError(DataError):
    """An image file cannot be decoded. The message names the file and says to remove or replace it."""


def is_image_file(path: Path) -> bool:
    """True for a visible file with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    # PIL's convert("L") clips 16-bit values at 255 instead of scaling them.
    a = np.asarray(img)
    if img.mode == "F":
        scale = 255.0 if a.size and float(np.nanmax(a)) <= 1.0 else 1.0
        a = np.nan_to_num(a.astype(np.float64) * scale)
    else:
        a = a.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def _normalise_mode(img: Image.Image, channels: int) -> Image.Image:
    if img.mode.startswith("I") or img.mode == "F":
        img = _high_bit_depth_to_l(img)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, _BACKGROUND)
        img.paste(rgba, mask=rgba.getchannel("A"))
    return img.convert("L" if channels == 1 else "RGB")


def load_image(path: str | Path, channels: int, min_size: int | None = None) -> torch.Tensor:
    """Decode an image file to uint8 (channels, H, W) in [0, 255].

    Any PIL mode is accepted: palette, grey+alpha and RGBA (composited on white),
    16-bit and 32-bit grey (scaled to 8 bits), CMYK, ... ``channels`` is 1 (luminance)
    or 3 (RGB). The EXIF orientation of photos is applied; animations give their first
    frame. With ``min_size``, JPEGs may be decoded at 1/2, 1/4 or 1/8 scale (much faster
    for large photos) as long as both sides stay >= ``min_size``. The result is a view of
    channels-last memory. Raises :class:`UnreadableImageError` naming the file when it
    cannot be decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            if min_size is not None and img.format == "JPEG":
                img.draft(img.mode, (min_size, min_size))
            img.load()
            img = ImageOps.exif_transpose(img)
            img = _normalise_mode(img, channels)
            array = np.array(img, dtype=np.uint8)  # a writable copy, so torch can wrap it
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, struct.error, ...
        reason = " ".join(str(e).split()) or type(e).__name__
        raise UnreadableImageError(f"cannot read image {path} ({reason}): remove or replace this file") from e
    if array.ndim == 2:
        array = array[:, :, None]
    # Left channels-last in memory: the transposing copy costs more than decoding, and
    # the antialiased resize is fastest on this layout anyway.
    return torch.from_numpy(array).permute(2, 0, 1)
