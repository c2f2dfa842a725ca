"""An offline paired translation task on Fashion-MNIST: edge map <-> clothing item, as pix2pix's edges2shoes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTTranslationSource, load_split
from ganzoo.data.tensor_dataset import TensorImageDataset, TensorPairDataset
from ganzoo.data.transforms import resize_square
from ganzoo.data.translation import SPLITS, DomainSets, TranslationDataModule, check_direction

#: Sobel magnitude -> brightness, on the [0, 1] image: a full black-to-white step edge (magnitude 4) maps to 1
#: (white); steeper corners saturate. Fixed, so an edge map depends on its item alone.
EDGE_SCALE = 0.25

# Items per step of the edge computation: bounds its int32 temporaries (a few MB each) on 60k images.
_EDGE_CHUNK = 4096


def _sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|Sobel gradient| of int32 (N, 1, H, W) grey levels with replicated borders, float32 (N, 1, H, W)."""
    height, width = x.shape[-2:]
    rows = torch.arange(-1, height + 1).clamp(0, height - 1)
    cols = torch.arange(-1, width + 1).clamp(0, width - 1)
    padded = x[..., rows, :][..., cols]

    def at(dy: int, dx: int) -> torch.Tensor:  # the neighbour (dy, dx) of every pixel
        return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    gx = at(-1, 1) + 2 * at(0, 1) + at(1, 1) - at(-1, -1) - 2 * at(0, -1) - at(1, -1)
    gy = at(1, -1) + 2 * at(1, 0) + at(1, 1) - at(-1, -1) - 2 * at(-1, 0) - at(-1, 1)
    # Integer gradients of integer grey levels: exact, and their squared sum (< 2**22) is exact in float32, so
    # the map is the same bit for bit on every machine.
    return (gx * gx + gy * gy).to(torch.float32).sqrt()


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """The edge maps of grey images: uint8 (N, 1, H, W) in [0, 255] -> uint8 (N, 1, H, W) in [0, 255].

    The Sobel gradient magnitude of the [0, 1] image times :data:`EDGE_SCALE`, clamped to [0, 1] and quantized
    like the image (round(255 x)). Borders are replicated, so a constant image (a blank one) has no edges.
    Deterministic: exact integer arithmetic up to one square root.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 1:
        raise TypeError(f"images must be uint8 (N, 1, H, W), got {images.dtype} {tuple(images.shape)}")
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], _EDGE_CHUNK):
        chunk = images[start : start + _EDGE_CHUNK].to(torch.int32)
        # On 0..255 levels the magnitude is 255x that of the [0, 1] image: the same scale gives 0..255 directly.
        edges = _sobel_magnitude(chunk) * EDGE_SCALE
        out[start : start + _EDGE_CHUNK] = edges.round_().clamp_(0, 255).to(torch.uint8)
    return out


class FashionMNISTEdgesDataModule(FashionMNISTTranslationSource, TranslationDataModule):
    """An offline paired translation task on Fashion-MNIST: domain A = edge maps, domain B = the clothing items.

    Item i of a split is ``(edge map of item i, item i)``, both float32 (channels, image_size, image_size) in
    [-1, 1]; train = the 60k train files, val = the 10k t10k files. Files are found like
    :class:`~ganzoo.data.fashion_mnist.FashionMNISTDataModule` finds them (``data_dir``, ``system_dir``, then a
    download: see :class:`~ganzoo.data.fashion_mnist.FashionMNISTFiles`). Items are resized to ``image_size``
    once per split, and each edge map is computed from its resized item (:func:`edge_map`), in memory. No crop;
    with ``flip`` both images of an item are mirrored alike. ``direction="BtoA"`` swaps the domains (items ->
    edge maps). In :meth:`domain_dataset` the labels are the Fashion-MNIST classes of the items, so an
    evaluation can check that a translation keeps its source's class; :meth:`evaluator_data` names all of
    Fashion-MNIST for the evaluator classifier.

    Extra args:
        direction: ``AtoB`` (edge map -> item) or ``BtoA`` (item -> edge map).
        system_dir, download: see FashionMNISTDataModule.
    Other args: see :class:`~ganzoo.data.base.ImageDataModule`.
    """

    paired = True
    dataset_name = "Fashion-MNIST edges"
    short_name = "fmnist_edges"

    def __init__(
        self,
        data_dir: str = "data",
        image_size: int = 32,
        channels: int = 1,
        direction: str = "AtoB",
        flip: bool = False,
        batch_size: int = 32,
        system_dir: str | None = SYSTEM_DIR,
        download: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(
            data_dir=data_dir, image_size=image_size, channels=channels, flip=flip, batch_size=batch_size, **kwargs
        )
        self.direction = check_direction(direction)
        self.system_dir = Path(system_dir) if system_dir else None
        self.download = download

    def _build_translation_sets(self) -> tuple[Dataset, Dataset, DomainSets]:
        files = self.files.locate()
        domains: DomainSets = {}
        pairs: dict[str, Dataset] = {}
        for split in SPLITS:
            images, labels = load_split(*files[split])
            items = resize_square(images, self.image_size)
            sides = {"edges": edge_map(items), "items": items}
            order = ("edges", "items") if self.direction == "AtoB" else ("items", "edges")
            domain_a, domain_b = (
                TensorImageDataset(
                    sides[side], labels, self.image_size, self.channels, train=split == "train", flip=self.flip
                )
                for side in order
            )
            domains["A", split], domains["B", split] = domain_a, domain_b
            pairs[split] = TensorPairDataset(domain_a, domain_b)
        return pairs["train"], pairs["val"], domains
