"""Reader for the idx format of MNIST and Fashion-MNIST (optionally gzipped).

Layout: two zero bytes, a type code (0x08 = unsigned byte, the only one these datasets
use), the number of dimensions, one big-endian uint32 per dimension, then the values
in C order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import torch

from ganzoo.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


def _corrupt(path: Path, why: str) -> DataError:
    return DataError(f"{path} is not a valid idx file ({why}): delete it and download it again")


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        # Sniff instead of trusting the suffix: torchvision keeps both forms side by side.
        if raw[:2] == _GZIP_MAGIC:
            return gzip.decompress(raw)
        return raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _corrupt(path, f"broken gzip data: {e}") from e
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}): check that it exists and is readable") from e


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an idx file of unsigned bytes; returns a uint8 tensor of the stored shape.

    Images files give (N, 28, 28) for (Fashion-)MNIST, label files give (N,).
    Raises DataError naming the file when it is truncated or not an idx file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise _corrupt(path, "bad magic number")
    type_code, ndim = data[2], data[3]
    if type_code != _UBYTE:
        raise _corrupt(path, f"element type 0x{type_code:02x}, only unsigned bytes (0x08) are supported")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise _corrupt(path, "truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = 1
    for d in shape:
        count *= d
    if len(data) - header != count:
        raise _corrupt(path, f"expected {count} values for shape {shape}, found {len(data) - header}")
    if count == 0:
        return torch.empty(shape, dtype=torch.uint8)
    # bytearray: torch.frombuffer warns on read-only buffers, and the copy is needed anyway.
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)
