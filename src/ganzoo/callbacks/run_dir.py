"""A Hydra callback that checks the run's output directory can be written before Hydra creates it and work starts."""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from ganzoo.checkpoint import unwritable_reason


class WritableRunDir(HydraCallback):
    """Before a run (``on_run_start``) or a multirun (``on_multirun_start``), probe ``hydra.run.dir`` /
    ``hydra.sweep.dir`` with a real write (see :func:`ganzoo.checkpoint.unwritable_reason`); when it cannot be
    written, print one ``error:`` line naming the directory and the override that moves it, and exit 1.

    Hydra itself would fail later with a traceback (creating the folder or opening its log file in it); from a
    read-only working directory (the default run directory is ``./outputs/...``) that is the first thing a user
    meets. Registered in ``ganzoo/conf/hydra/default.yaml``.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "run.dir", "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "sweep.dir", "hydra.sweep.dir")


def _check(config: DictConfig, key: str, override: str) -> None:
    try:
        directory = OmegaConf.select(config, f"hydra.{key}", throw_on_missing=True)
    except Exception:  # an interpolation only Hydra's job can resolve: Hydra's own error says more
        return
    if not directory:
        return
    reason = unwritable_reason(str(directory))
    if reason is not None:
        print(
            f"error: the run directory {directory} cannot be written: {reason}; pass {override}=<a writable folder>",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)
