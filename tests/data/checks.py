"""Assertions shared by the data tests (and usable by other test suites)."""

from __future__ import annotations

import socket

import torch


def assert_image_batch(
    batch: tuple[torch.Tensor, torch.Tensor], n: int, channels: int, size: int, num_classes: int
) -> None:
    """``batch`` is (images float32 (n, channels, size, size) in [-1, 1], labels int64 (n,)).

    Labels must lie in [0, num_classes), or all be -1 when ``num_classes == 0``.
    """
    images, labels = batch
    assert images.shape == (n, channels, size, size)
    assert images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.std() > 0.05, "images should not be constant"
    assert labels.shape == (n,)
    assert labels.dtype == torch.int64
    if num_classes == 0:
        assert (labels == -1).all()
    else:
        assert ((labels >= 0) & (labels < num_classes)).all()


def network_reachable(host: str) -> bool:
    """Whether ``host`` resolves; offline-behaviour tests skip when it does (the download would succeed)."""
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
