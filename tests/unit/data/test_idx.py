import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganzoo.data.fashion_mnist import SYSTEM_DIR
from ganzoo.data.idx import read_idx
from ganzoo.errors import DataError


def _idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_reads_plain_and_gzipped(tmp_path: Path, gz: bool):
    array = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = tmp_path / "x-idx3-ubyte"
    payload = _idx_bytes(array)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    got = read_idx(path)
    assert got.dtype == torch.uint8 and got.shape == (7, 5, 3)
    assert np.array_equal(got.numpy(), array)


def test_bad_magic_names_file(tmp_path: Path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="labels-idx1-ubyte is not a valid idx file.*bad magic") as e:
        read_idx(path)
    assert "\n" not in str(e.value)


def test_truncated_data_names_file(tmp_path: Path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(_idx_bytes(np.zeros((4, 3, 3), np.uint8))[:-5])
    with pytest.raises(DataError, match=r"images-idx3-ubyte is not a valid idx file \(expected 36 values"):
        read_idx(path)


def test_truncated_gzip_names_file(tmp_path: Path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(
        gzip.compress(_idx_bytes(np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)))[:500]
    )
    with pytest.raises(
        DataError, match="images-idx3-ubyte.gz is not a valid idx file.*delete it and download it again"
    ):
        read_idx(path)


def test_unsupported_element_type(tmp_path: Path):
    path = tmp_path / "floats-idx1"
    path.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4)
    with pytest.raises(DataError, match="only unsigned bytes"):
        read_idx(path)


@pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_reads_real_debian_files():
    start = time.perf_counter()
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        images = read_idx(Path(SYSTEM_DIR) / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(Path(SYSTEM_DIR) / f"{prefix}-labels-idx1-ubyte.gz")
        assert images.shape == (n, 28, 28)
        assert labels.shape == (n,)
        assert labels.min() == 0 and labels.max() == 9
        assert torch.bincount(labels.long()).tolist() == [n // 10] * 10
        assert images.float().mean().item() > 50  # real clothes, not zeros
    assert time.perf_counter() - start < 10
