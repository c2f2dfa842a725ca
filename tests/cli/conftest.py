"""Every test under tests/cli runs ganzoo's entry points end to end, in subprocesses or (every experiment's recipe)
as whole training runs in this process: marked ``cli`` (``-m "not cli"`` skips them)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest's collection hook sees the items of the whole session: mark only this folder's.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cli)
