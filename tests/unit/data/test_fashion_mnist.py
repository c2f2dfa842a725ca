import socket
import time
from pathlib import Path

import pytest
import torch

from ganzoo.data import FashionMNISTDataModule
from ganzoo.data.fashion_mnist import SYSTEM_DIR
from ganzoo.errors import ConfigError, DataError
from tests.data.checks import assert_image_batch, network_reachable
from tests.data.writers import write_fashion_mnist


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_batches(fashion_root: Path, no_system_dir: str, image_size: int, channels: int):
    dm = FashionMNISTDataModule(
        str(fashion_root), image_size=image_size, channels=channels, batch_size=16, system_dir=no_system_dir, flip=True
    )
    assert (dm.image_size, dm.channels, dm.num_classes) == (image_size, channels, 10)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 64 and len(dm.val_set) == 32
    train = list(dm.train_dataloader())
    assert len(train) == 4
    assert_image_batch(train[0], 16, channels, image_size, 10)
    val = list(dm.val_dataloader())
    assert_image_batch(val[0], 16, channels, image_size, 10)
    # val is in file order: labels were written as i % 10
    assert val[0][1].tolist() == [i % 10 for i in range(16)]
    if channels == 3:
        assert torch.equal(val[0][0][:, 0], val[0][0][:, 2]), "grey -> RGB repeats the plane"


def test_train_loader_shuffles_deterministically(fashion_root: Path, no_system_dir: str):
    def first_labels(seed: int) -> list[int]:
        dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, system_dir=no_system_dir, seed=seed)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))[1].tolist()

    assert first_labels(0) == first_labels(0)
    assert first_labels(0) != [i % 10 for i in range(32)]
    assert first_labels(0) != first_labels(1)


def test_uncompressed_files_in_alternative_layout(tmp_path: Path, no_system_dir: str):
    write_fashion_mnist(tmp_path, n_train=20, n_test=10, subdir="fashion-mnist", gz=False)
    dm = FashionMNISTDataModule(str(tmp_path), batch_size=4, system_dir=no_system_dir)
    dm.prepare_data()
    dm.setup()
    assert len(dm.train_set) == 20 and len(dm.val_set) == 10


def test_data_dir_takes_precedence_over_system_dir(tmp_path: Path):
    system = write_fashion_mnist(tmp_path / "system", n_train=30, n_test=10, subdir="")
    data_dir = tmp_path / "data"
    write_fashion_mnist(data_dir, n_train=20, n_test=10)
    dm = FashionMNISTDataModule(str(data_dir), batch_size=4, system_dir=str(system))
    dm.setup()
    assert len(dm.train_set) == 20


def test_falls_back_to_system_dir(tmp_path: Path):
    system = write_fashion_mnist(tmp_path / "system", n_train=30, n_test=10, subdir="")
    dm = FashionMNISTDataModule(str(tmp_path / "empty"), batch_size=4, system_dir=str(system), download=False)
    dm.prepare_data()
    dm.setup()
    assert len(dm.train_set) == 30


def test_incomplete_directory_is_skipped(tmp_path: Path):
    data_dir = tmp_path / "data"
    raw = write_fashion_mnist(data_dir, n_train=20, n_test=10)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    system = write_fashion_mnist(tmp_path / "system", n_train=30, n_test=10, subdir="")
    dm = FashionMNISTDataModule(str(data_dir), batch_size=4, system_dir=str(system))
    dm.setup()
    assert len(dm.train_set) == 30


def _assert_missing_message(message: str, data_dir: Path) -> None:
    assert "\n" not in message
    assert message.startswith("Fashion-MNIST not found")
    assert str(data_dir / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "network access" in message


def test_missing_without_download(tmp_path: Path, no_system_dir: str):
    dm = FashionMNISTDataModule(str(tmp_path), system_dir=no_system_dir, download=False)
    with pytest.raises(DataError) as e:
        dm.prepare_data()
    _assert_missing_message(str(e.value), tmp_path)
    with pytest.raises(DataError) as e:
        dm.setup("fit")
    _assert_missing_message(str(e.value), tmp_path)


@pytest.mark.skipif(
    network_reachable("ossci-datasets.s3.amazonaws.com"), reason="network reachable: the download would succeed"
)
def test_offline_download_fails_fast_with_all_remedies(tmp_path: Path, no_system_dir: str):
    before = socket.getdefaulttimeout()
    dm = FashionMNISTDataModule(str(tmp_path), system_dir=no_system_dir)
    start = time.perf_counter()
    with pytest.raises(DataError) as e:
        dm.prepare_data()
    assert time.perf_counter() - start < 15
    _assert_missing_message(str(e.value), tmp_path)
    assert socket.getdefaulttimeout() == before


def test_corrupt_file_is_named(tmp_path: Path, no_system_dir: str):
    raw = write_fashion_mnist(tmp_path, n_train=20, n_test=10)
    bad = raw / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-6])
    dm = FashionMNISTDataModule(str(tmp_path), system_dir=no_system_dir)
    with pytest.raises(DataError, match=f"^{bad}.*delete it and download it again$"):
        dm.setup()


def test_mismatched_counts(tmp_path: Path, no_system_dir: str):
    raw = write_fashion_mnist(tmp_path, n_train=20, n_test=10)
    other = write_fashion_mnist(tmp_path / "other", n_train=25, n_test=10)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes((other / "train-labels-idx1-ubyte.gz").read_bytes())
    dm = FashionMNISTDataModule(str(tmp_path), system_dir=no_system_dir)
    with pytest.raises(DataError, match="has 25 labels for 20 images.*matching pair"):
        dm.setup()


def test_num_classes_argument_is_checked():
    assert FashionMNISTDataModule(num_classes=10).num_classes == 10
    with pytest.raises(
        ConfigError, match="Fashion-MNIST has 10 classes but data.num_classes=5: set data.num_classes=10"
    ):
        FashionMNISTDataModule(num_classes=5)


@pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_dataset_from_system_dir(tmp_path: Path):
    start = time.perf_counter()
    dm = FashionMNISTDataModule(str(tmp_path), batch_size=256, download=False)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 60000 and len(dm.val_set) == 10000
    assert_image_batch(next(iter(dm.train_dataloader())), 256, 1, 32, 10)
    assert time.perf_counter() - start < 20
