"""The offline paired Fashion-MNIST task (data=fmnist_edges): edge maps paired with their items, on tiny files
written in the real format and on the real Fashion-MNIST files where the Debian package is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule, FashionMNISTFiles, load_split
from ganzoo.data.fmnist_domains import FashionMNISTDomainsDataModule
from ganzoo.data.fmnist_edges import FashionMNISTEdgesDataModule, edge_map
from ganzoo.data.paired import PairedImageDataModule
from ganzoo.data.transforms import resize_square
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from ganzoo.errors import ConfigError
from ganzoo.images import to_uint8


def edges(root: Path, no_system_dir: str, **kwargs) -> FashionMNISTEdgesDataModule:
    kwargs = {"system_dir": no_system_dir, "download": False, "batch_size": 4, **kwargs}
    dm = FashionMNISTEdgesDataModule(str(root), **kwargs)
    dm.setup()
    return dm


def test_edge_map_of_blank_constant_and_step_images() -> None:
    blank = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    assert torch.equal(edge_map(blank), blank)
    assert not edge_map(torch.full((1, 1, 8, 8), 200, dtype=torch.uint8)).any()  # replicated borders: no edge
    step = torch.zeros(1, 1, 6, 8, dtype=torch.uint8)
    step[..., 4:] = 255  # black | white between columns 3 and 4
    out = edge_map(step)[0, 0]
    # A full step is white on both sides of it (magnitude 4 x 255 x EDGE_SCALE), black away from it.
    assert (out[:, 3:5] == 255).all() and not out[:, :3].any() and not out[:, 5:].any()
    half = edge_map(step // 2)[0, 0]  # half the contrast, half the brightness (rounded)
    assert (half[:, 3:5] == 127).all()
    with pytest.raises(TypeError, match=r"uint8 \(N, 1, H, W\)"):
        edge_map(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_paired_flags() -> None:
    assert FashionMNISTEdgesDataModule.paired and PairedImageDataModule.paired
    assert not UnpairedImageFolderDataModule.paired and not FashionMNISTDomainsDataModule.paired


def test_items_are_an_edge_map_and_its_item_aligned_under_flips(fashion_root: Path, no_system_dir: str) -> None:
    # fashion_root: 64 train + 32 test noisy asymmetric images, labels i % 10.
    dm = edges(fashion_root, no_system_dir, flip=True)
    assert dm.num_classes == 0 and dm.direction == "AtoB"
    assert len(dm.train_set) == 64 and len(dm.val_set) == 32
    plain_a, plain_b = dm.train_set.without_augmentation()[5]
    flipped = 0
    for seed in range(24):
        a, b = dm.train_set[(5, seed)]
        assert a.shape == b.shape == (1, 32, 32) and a.dtype == b.dtype == torch.float32
        # The Sobel magnitude commutes with a mirror, so A stays the edge map of B only if both were flipped alike.
        assert torch.equal(to_uint8(a), edge_map(to_uint8(b)[None])[0])
        if torch.equal(b, plain_b.flip(-1)):
            flipped += 1
            assert torch.equal(a, plain_a.flip(-1))
        else:
            assert torch.equal(a, plain_a) and torch.equal(b, plain_b)
    assert 4 <= flipped <= 20, "about half the items should be mirrored"
    # Mirroring one side only breaks the relation: the check above can fail.
    assert not torch.equal(to_uint8(plain_a), edge_map(to_uint8(plain_b.flip(-1))[None])[0])
    # Every item of an epoch through the real loader (sampler keys, batches) keeps it too.
    for real_a, real_b in dm.train_dataloader():
        assert real_a.shape == real_b.shape == (4, 1, 32, 32)
        assert torch.equal(to_uint8(real_a), edge_map(to_uint8(real_b)))
    # No flip by default, and never in val.
    assert torch.equal(edges(fashion_root, no_system_dir).train_set[(5, 1)][0], plain_a)
    val_a, val_b = dm.val_set[3]
    assert torch.equal(to_uint8(val_a), edge_map(to_uint8(val_b)[None])[0])


def test_domains_labels_direction_and_evaluator_data(fashion_root: Path, no_system_dir: str) -> None:
    dm = edges(fashion_root, no_system_dir)
    files = FashionMNISTFiles(fashion_root, None, False).locate()
    for split, n in (("train", 64), ("val", 32)):
        images, labels = load_split(*files[split])
        a, b = dm.domain_dataset("A", split), dm.domain_dataset("B", split)
        pairs = dm.train_set.without_augmentation() if split == "train" else dm.val_set
        assert len(a) == len(b) == len(pairs) == n
        for i in (0, 7, n - 1):
            (edge, label_a), (item, label_b) = a[i], b[i]
            # Item i of both domains is Fashion-MNIST item i (resized), with its class; pair i is made of them.
            assert int(label_a) == int(label_b) == int(labels[i]) == i % 10
            assert torch.equal(to_uint8(item), resize_square(images[i], 32))
            assert torch.equal(to_uint8(edge), edge_map(to_uint8(item)[None])[0])
            assert torch.equal(pairs[i][0], edge) and torch.equal(pairs[i][1], item)
    assert torch.equal(dm.eval_dataset("val")[0][0], dm.domain_dataset("B", "val")[0][0])
    swapped = edges(fashion_root, no_system_dir, direction="BtoA")
    sa, sb = swapped.train_set[(2, 9)]
    a, b = dm.train_set[(2, 9)]
    assert torch.equal(sa, b) and torch.equal(sb, a)
    assert torch.equal(swapped.domain_dataset("B", "val")[4][0], dm.domain_dataset("A", "val")[4][0])
    assert swapped.fingerprint("val") != dm.fingerprint("val") == dm.fingerprint("val")
    evaluator = dm.evaluator_data()
    assert isinstance(evaluator, FashionMNISTDataModule) and evaluator.num_classes == 10
    assert (evaluator.image_size, evaluator.channels, evaluator.data_dir) == (32, 1, fashion_root)
    rgb = edges(fashion_root, no_system_dir, channels=3)
    image = rgb.domain_dataset("A", "val")[1][0]
    assert image.shape == (3, 32, 32) and torch.equal(image[0], image[2])
    with pytest.raises(ConfigError, match="data.direction='AtoC': use AtoB or BtoA, e.g. data.direction=AtoB"):
        FashionMNISTEdgesDataModule(str(fashion_root), direction="AtoC")


def test_a_resumed_loader_continues_with_the_same_pairs(fashion_root: Path, no_system_dir: str) -> None:
    kwargs = {"flip": True, "batch_size": 8, "seed": 3}
    uninterrupted = list(edges(fashion_root, no_system_dir, **kwargs).train_dataloader())
    assert len(uninterrupted) == 8
    interrupted = edges(fashion_root, no_system_dir, **kwargs)
    batches = iter(interrupted.train_dataloader())
    for _ in range(5):
        next(batches)
    state = interrupted.state_dict()
    assert state == {"train_position": {"epoch": 0, "items": 40}}
    resumed = edges(fashion_root, no_system_dir, **kwargs)
    resumed.load_state_dict(state)
    rest = list(resumed.train_dataloader())
    assert len(rest) == 3
    for got, want in zip(rest, uninterrupted[5:], strict=True):
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_edges(tmp_path: Path) -> None:
    dm = FashionMNISTEdgesDataModule(str(tmp_path), download=False)
    dm.check_available()
    dm.setup()
    assert len(dm.train_set) == 60000 and len(dm.val_set) == 10000
    files = FashionMNISTFiles(tmp_path, Path(SYSTEM_DIR), False).locate()
    _, val_labels = load_split(*files["val"])
    real_a, real_b = next(iter(dm.train_dataloader()))
    assert real_a.shape == real_b.shape == (32, 1, 32, 32)
    for x in (real_a, real_b):
        assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert torch.equal(to_uint8(real_a), edge_map(to_uint8(real_b)))
    domain_a, domain_b = dm.domain_dataset("A", "val"), dm.domain_dataset("B", "val")
    assert torch.equal(torch.stack([domain_a[i][1] for i in range(100)]), val_labels[:100])
    assert torch.equal(torch.stack([domain_b[i][1] for i in range(100)]), val_labels[:100])
    # Edges are bright on the outline of an item and dark on the background around it.
    edge_images = domain_a.images.float() / 255  # type: ignore[attr-defined]
    items = domain_b.images  # type: ignore[attr-defined]
    background = items == 0
    assert edge_images[background].mean() < 0.05 < 0.3 < edge_images.amax((1, 2, 3)).mean()
    # Computed the same again (a second module, the other direction): bit for bit.
    swapped = FashionMNISTEdgesDataModule(str(tmp_path), download=False, direction="BtoA")
    swapped.setup()
    assert torch.equal(swapped.domain_dataset("B", "val").images, domain_a.images)  # type: ignore[attr-defined]
    assert swapped.fingerprint("val") == dm.domain_dataset("A", "val").fingerprint()  # type: ignore[attr-defined]
