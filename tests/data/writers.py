"""Write tiny datasets in their real on-disk formats, for tests that need data without a download.

Every writer is deterministic (fixed numpy seed) and returns the directory it wrote.
Images are "random but structured": a class-dependent bright block on a noisy dark
background, so different classes look different and every pixel value is plausible.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def structured_images(
    n: int, height: int, width: int, channels: int, labels: Sequence[int], seed: int = 0
) -> np.ndarray:
    """uint8 (n, height, width, channels): noise in [0, 64) plus a bright block placed by the label."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 64, size=(n, height, width, channels), dtype=np.uint8)
    bh, bw = max(1, height // 3), max(1, width // 3)
    for i, label in enumerate(labels):
        top = (label * 7) % max(1, height - bh + 1)
        left = (label * 5) % max(1, width - bw + 1)
        colour = rng.integers(128, 256, size=channels, dtype=np.uint8)
        images[i, top : top + bh, left : left + bw] = colour
    return images


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_fashion_mnist(
    root: str | Path,
    n_train: int = 64,
    n_test: int = 32,
    subdir: str = "FashionMNIST/raw",
    gz: bool = True,
    seed: int = 0,
) -> Path:
    """Write the four Fashion-MNIST idx files (28x28 grey, labels ``i % 10``) into ``root/subdir``.

    ``subdir="FashionMNIST/raw"`` is torchvision's layout; use ``"fashion-mnist"`` for the
    alternative one, or ``""`` for a system-style directory. Files get ``.gz`` when ``gz``.
    """
    out = Path(root) / subdir
    out.mkdir(parents=True, exist_ok=True)
    for prefix, n, split_seed in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        labels = np.arange(n) % 10
        images = structured_images(n, 28, 28, 1, labels.tolist(), seed=split_seed)[..., 0]
        _write_idx(out / f"{prefix}-images-idx3-ubyte", images, gz)
        _write_idx(out / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8), gz)
    return out


def _cifar_pixels(n: int, labels: list[int], seed: int) -> np.ndarray:
    # CIFAR rows are the R, G, B planes one after another: (N, 3, 32, 32) flattened.
    return structured_images(n, 32, 32, 3, labels, seed=seed).transpose(0, 3, 1, 2).reshape(n, 3072).copy()


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py`` with ``data_batch_1..5`` (n_train split over them), ``test_batch``
    and ``batches.meta``; labels are ``i % 10``."""
    out = Path(root) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    labels = [i % 10 for i in range(n_train)]
    data = _cifar_pixels(n_train, labels, seed)
    for b, idx in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        batch = {
            b"batch_label": f"training batch {b} of 5".encode(),
            b"labels": [labels[i] for i in idx],
            b"data": data[idx],
        }
        _pickle(out / f"data_batch_{b}", batch)
    test_labels = [i % 10 for i in range(n_test)]
    _pickle(
        out / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": test_labels,
            b"data": _cifar_pixels(n_test, test_labels, seed + 1),
        },
    )
    _pickle(out / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072})
    return out


def write_cifar100(root: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Write ``root/cifar-100-python`` with ``train``, ``test`` and ``meta``; fine labels are ``i % 100``."""
    out = Path(root) / "cifar-100-python"
    out.mkdir(parents=True, exist_ok=True)
    for name, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        fine = [i % 100 for i in range(n)]
        batch = {
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
            b"batch_label": name.encode(),
            b"fine_labels": fine,
            b"coarse_labels": [f // 5 for f in fine],
            b"data": _cifar_pixels(n, fine, split_seed),
        }
        _pickle(out / name, batch)
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    _pickle(out / "meta", meta)
    return out


# PIL mode -> (channels of the synthetic array, default file suffix able to store the mode)
_MODES = {
    "RGB": (3, ".png"),
    "L": (1, ".png"),
    "RGBA": (4, ".png"),
    "LA": (2, ".png"),
    "P": (3, ".png"),
    "I;16": (1, ".png"),
    "CMYK": (4, ".jpg"),
}


def make_image(width: int, height: int, mode: str = "RGB", label: int = 0, seed: int = 0) -> Image.Image:
    """A structured PIL image of ``mode`` (RGB, L, RGBA, LA, P, I;16 or CMYK)."""
    channels, _ = _MODES[mode]
    array = structured_images(1, height, width, channels, [label], seed=seed)[0]
    if mode == "RGBA" or mode == "LA":
        array[..., -1] = 255  # opaque, so the pixels survive compositing unchanged
    if mode == "P":
        return Image.fromarray(array, "RGB").quantize(colors=16)
    if mode == "I;16":
        return Image.fromarray(array[..., 0].astype(np.uint16) * 257)
    if channels == 1:
        return Image.fromarray(array[..., 0], "L")
    return Image.fromarray(array, mode)


def write_image_folder(
    root: str | Path,
    n: int = 8,
    size: int | tuple[int, int] = 40,
    classes: Sequence[str] | None = None,
    mode: str = "RGB",
    ext: str | None = None,
    seed: int = 0,
) -> Path:
    """Write ``n`` images per class into ``root/<class>/`` (or ``n`` images straight into ``root``).

    ``size`` is the side of square images or a (width, height) pair; ``ext`` defaults to
    one that can hold ``mode`` (``.png``, or ``.jpg`` for CMYK). Returns ``root``.
    """
    root = Path(root)
    width, height = (size, size) if isinstance(size, int) else size
    suffix = ext or _MODES[mode][1]
    for label, name in enumerate(classes if classes is not None else [None]):
        out = root / name if name is not None else root
        out.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            make_image(width, height, mode, label=label, seed=seed + 1000 * label + i).save(out / f"img{i:04d}{suffix}")
    return root


#: (mode, (width, height)) of the images the translation writers cycle through: sizes and modes differ.
_TRANSLATION_IMAGES = (("RGB", (40, 36)), ("L", (32, 32)), ("RGBA", (48, 40)), ("RGB", (36, 44)), ("P", (40, 40)))


def write_unpaired_folders(
    root: str | Path,
    n_train_a: int = 5,
    n_train_b: int = 7,
    n_test_a: int = 3,
    n_test_b: int = 2,
    seed: int = 0,
) -> Path:
    """Write the official CycleGAN layout: ``root/trainA``, ``trainB``, ``testA``, ``testB``.

    Images cycle through RGB, grey (L), RGBA and palette modes at different sizes (see
    ``_TRANSLATION_IMAGES``); domain A has label 1 (block top left), domain B label 6. Names are
    ``a0000.png``... and ``b0000.png``...; ``trainB/`` keeps its images in a subfolder ``sub/``
    from the third one on, to exercise the recursive search. Returns ``root``.
    """
    root = Path(root)
    counts = {"trainA": n_train_a, "trainB": n_train_b, "testA": n_test_a, "testB": n_test_b}
    for folder, n in counts.items():
        domain = folder[-1]
        label = 1 if domain == "A" else 6
        for i in range(n):
            mode, (width, height) = _TRANSLATION_IMAGES[i % len(_TRANSLATION_IMAGES)]
            out = root / folder / ("sub" if folder == "trainB" and i >= 2 else "")
            out.mkdir(parents=True, exist_ok=True)
            image = make_image(width, height, mode, label=label, seed=seed + 100 * len(folder) * (label + 1) + i)
            image.save(out / f"{domain.lower()}{i:04d}.png")
    return root


def write_aligned_pairs(
    root: str | Path, n_train: int = 4, n_val: int = 2, size: int = 32, split_dirs: bool = False, seed: int = 0
) -> Path:
    """Write paired data whose B is A's pixel-wise image: ``B = 255 - A`` (inverted RGB).

    ``split_dirs=False``: the official aligned layout, ``root/train/NNNN.png`` and ``root/val/NNNN.png``
    with A (left) and B (right) side by side, (2 * size) x size. ``split_dirs=True``:
    ``root/A/train/NNNN.png`` + ``root/B/train/NNNN.png`` (and ``val``), size x size each.
    A pixel of A at (y, x) therefore corresponds to the same pixel of B. Returns ``root``.
    """
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        a = structured_images(n, size, size, 3, [i % 10 for i in range(n)], seed=seed + (split == "val"))
        b = 255 - a
        for i in range(n):
            name = f"{i:04d}.png"
            if split_dirs:
                for domain, array in (("A", a[i]), ("B", b[i])):
                    out = root / domain / split
                    out.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(array, "RGB").save(out / name)
            else:
                out = root / split
                out.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.concatenate([a[i], b[i]], axis=1), "RGB").save(out / name)
    return root
