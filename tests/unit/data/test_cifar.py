import pickle
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganzoo.data import CIFAR10DataModule, CIFAR100DataModule
from ganzoo.errors import DataError
from ganzoo.images import to_uint8
from tests.data.checks import assert_image_batch, network_reachable
from tests.data.writers import write_cifar10


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_cifar10_batches(cifar10_root: Path, image_size: int, channels: int):
    dm = CIFAR10DataModule(str(cifar10_root), image_size=image_size, channels=channels, batch_size=8, flip=True)
    assert (dm.image_size, dm.channels, dm.num_classes) == (image_size, channels, 10)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 50 and len(dm.val_set) == 20
    assert dm.class_names == [f"class{i}" for i in range(10)]
    train = list(dm.train_dataloader())
    assert len(train) == 6  # 50 // 8, last partial batch dropped
    assert_image_batch(train[0], 8, channels, image_size, 10)
    val = list(dm.val_dataloader())
    assert [len(b[1]) for b in val] == [8, 8, 4]
    assert_image_batch(val[0], 8, channels, image_size, 10)


def test_cifar100_batches(cifar100_root: Path):
    dm = CIFAR100DataModule(str(cifar100_root), batch_size=50)
    assert dm.num_classes == 100
    dm.setup("fit")
    assert len(dm.train_set) == 200 and len(dm.val_set) == 100
    images, labels = next(iter(dm.val_dataloader()))
    assert_image_batch((images, labels), 50, 3, 32, 100)
    assert labels.tolist() == list(range(50))
    assert dm.class_names[:2] == ["fine0", "fine1"]


def test_pixels_round_trip_exactly(cifar10_root: Path):
    with open(cifar10_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        test = pickle.load(f, encoding="bytes")
    dm = CIFAR10DataModule(str(cifar10_root), batch_size=4)
    dm.setup()
    for dataset, source in ((dm.train_set, batch), (dm.val_set, test)):
        image, label = dataset[3]
        expected = torch.from_numpy(np.asarray(source[b"data"][3])).reshape(3, 32, 32)
        assert torch.equal(to_uint8(image), expected)
        assert label.item() == source[b"labels"][3] and label.dtype == torch.int64 and label.dim() == 0


def test_train_flip_only_mirrors(cifar10_root: Path):
    dm = CIFAR10DataModule(str(cifar10_root), flip=True)
    dm.setup()
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        image, _ = dm.train_set[0]
        reference = dm.train_set.images[0]
        if torch.equal(to_uint8(image), reference):
            seen.add("plain")
        else:
            assert torch.equal(to_uint8(image), reference.flip(-1))
            seen.add("flipped")
    assert seen == {"plain", "flipped"}
    for _ in range(5):
        image, _ = dm.val_set[0]
        assert torch.equal(to_uint8(image), dm.val_set.images[0]), "no flips in val"


def test_missing_files_without_download(tmp_path: Path):
    dm = CIFAR10DataModule(str(tmp_path), download=False)
    with pytest.raises(DataError) as e:
        dm.prepare_data()
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("CIFAR-10 not found")
    assert f"extract cifar-10-python.tar.gz into {tmp_path}" in message
    assert "network access" in message


def test_one_missing_batch_is_named(cifar10_root: Path):
    (cifar10_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    dm = CIFAR100DataModule(str(cifar10_root), download=False)
    with pytest.raises(DataError, match="CIFAR-100 not found .*cifar-100-python/train is missing"):
        dm.setup()
    dm = CIFAR10DataModule(str(cifar10_root), download=False)
    with pytest.raises(DataError, match="data_batch_4 is missing"):
        dm.setup()


@pytest.mark.skipif(network_reachable("www.cs.toronto.edu"), reason="network reachable: the download would succeed")
def test_offline_download_fails_fast(tmp_path: Path):
    before = socket.getdefaulttimeout()
    dm = CIFAR100DataModule(str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(DataError, match="CIFAR-100 not found.*run once with network access"):
        dm.prepare_data()
    assert time.perf_counter() - start < 15
    assert socket.getdefaulttimeout() == before


def test_corrupt_pickle_is_named(tmp_path: Path):
    root = write_cifar10(tmp_path, n_train=10, n_test=5)
    bad = root / "test_batch"
    bad.write_bytes(bad.read_bytes()[:200])
    dm = CIFAR10DataModule(str(tmp_path))
    with pytest.raises(DataError, match=f"^{bad} is not a CIFAR batch file .*extract the archive again$"):
        dm.setup()


def test_wrong_shape_is_named(tmp_path: Path):
    root = write_cifar10(tmp_path, n_train=10, n_test=5)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, f)
    dm = CIFAR10DataModule(str(tmp_path))
    with pytest.raises(DataError, match="test_batch holds data uint8\\(5, 100\\).*expected uint8 \\(N, 3072\\)"):
        dm.setup()


def test_huge_sizes_resize_per_item_instead(cifar10_root: Path, monkeypatch):
    import ganzoo.data.tensor_dataset as td

    dm = CIFAR10DataModule(str(cifar10_root), image_size=48, channels=1)
    dm.setup()
    monkeypatch.setattr(td, "MAX_PRESIZED_BYTES", 0)
    lazy = CIFAR10DataModule(str(cifar10_root), image_size=48, channels=1)
    lazy.setup()
    assert dm.val_set.images.shape == (20, 1, 48, 48)
    assert lazy.val_set.images.shape == (20, 1, 32, 32), "kept at native size"
    for i in (0, 7):
        assert torch.equal(lazy.val_set[i][0], dm.val_set[i][0])
