"""Fixtures of the in-process tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Torch on one thread: the tiny networks' operations are too small to share, and on a busy machine two
    threads mostly wait for each other (a tiny BigGAN step took seconds instead of a tenth of one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
