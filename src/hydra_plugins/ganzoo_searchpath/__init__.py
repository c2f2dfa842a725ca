"""Hydra search-path plugin: the config folders named in ``GANZOO_CONFIG_PATH`` extend ganzoo's configs.

``GANZOO_CONFIG_PATH=~/my_conf`` (several folders separated by ``os.pathsep``, ``:`` on Linux and macOS) is the
standing form of ``hydra.searchpath=[file://my_conf]``: every ganzoo entry point (``ganzoo-train``,
``python -m ganzoo.sample``, ``ganzoo.train.compose_config``, Lightning's DDP children, ...) then finds the
folders' files as options of ganzoo's groups, e.g. ``my_conf/experiment/my_dcgan.yaml`` as
``experiment=my_dcgan``. The folders come after ganzoo's own configs, like ``hydra.searchpath`` entries (which
still add to them), so a file named like one of ganzoo's is shadowed by ganzoo's: give yours names of their own.

Hydra imports every module under ``hydra_plugins`` for every Hydra application in the environment, so this one
imports nothing heavy and changes only search paths whose primary configs are ganzoo's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

ENV_VAR = "GANZOO_CONFIG_PATH"
# The search-path provider name, shown by `--info searchpath` and in Hydra's messages about the folders.
PROVIDER = ENV_VAR


def _ganzoo_config_dir() -> Path | None:
    """ganzoo's own config folder (``<package>/conf``), found without importing ganzoo."""
    spec = importlib.util.find_spec("ganzoo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "conf"


def _is_ganzoo_config(path: str, config_dir: Path) -> bool:
    if path == "pkg://ganzoo.conf":
        return True
    location = path.removeprefix("file://")
    return "://" not in location and Path(location).resolve() == config_dir


def config_folders(value: str | None = None) -> list[Path]:
    """The existing folders ``GANZOO_CONFIG_PATH`` (or ``value``) names, as absolute paths, in order.

    Relative folders are taken from the current directory and ``~`` is expanded. A name that is not a folder is
    reported on stderr with one ``warning:`` line and skipped.
    """
    value = os.environ.get(ENV_VAR, "") if value is None else value
    folders = []
    for entry in value.split(os.pathsep):
        if not entry.strip():
            continue
        folder = Path(entry.strip()).expanduser().resolve()
        if folder.is_dir():
            folders.append(folder)
        else:
            print(
                f"warning: {ENV_VAR} names {entry}, which is not a folder: its configs are not used "
                f"(create it, or remove it from {ENV_VAR})",
                file=sys.stderr,
                flush=True,
            )
    return folders


class GanzooConfigPathSearchPathPlugin(SearchPathPlugin):
    """Appends the folders of ``GANZOO_CONFIG_PATH`` to the search path of ganzoo's entry points."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not os.environ.get(ENV_VAR):
            return
        config_dir = _ganzoo_config_dir()
        if config_dir is None:
            return
        mains = [e.path for e in search_path.get_path() if e.provider == "main"]
        if not any(_is_ganzoo_config(path, config_dir) for path in mains):
            return  # another Hydra application in the same environment
        for folder in config_folders():
            search_path.append(provider=PROVIDER, path=f"file://{folder}")
