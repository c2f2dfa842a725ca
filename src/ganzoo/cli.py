"""What the ``python -m ganzoo.X`` entry points share: where the configs live and how errors reach the user."""

from __future__ import annotations

import functools
import logging
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf

from ganzoo.errors import GanzooError

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")

# Arithmetic in configs, so that values that follow from others are never typed twice:
# ${sum:a,b} (CycleGAN's max_epochs = n_epochs + n_epochs_decay), ${prod:a,b,c} (BigGAN's loader batch =
# batch_size * num_D_steps * num_D_accumulations), ${max:a,b} (BigGAN's classes: at least one).
OmegaConf.register_new_resolver("sum", lambda *values: sum(values), replace=True)
OmegaConf.register_new_resolver("prod", lambda *values: math.prod(values), replace=True)
OmegaConf.register_new_resolver("max", lambda *values: max(values), replace=True)

log = logging.getLogger("ganzoo")
F = TypeVar("F", bound=Callable[..., Any])


class _DropLightningAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_library_noise() -> None:
    """Silence messages that tell a ganzoo user nothing actionable."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropLightningAdverts())
    # Checkpoints are meant to hold the state after the step's updates; Lightning warns about that for every
    # manual-optimization module.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    # GANs have no validation step until metrics are configured; the datamodule still offers a val split.
    warnings.filterwarnings("ignore", message="You passed in a `val_dataloader` but have no `validation_step`")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_gather is deprecated")
    # torchmetrics' KID and IS keep every feature, which is what ganzoo's evaluation sizes for.
    warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")


def ganzoo_cause(error: BaseException) -> GanzooError | None:
    """The GanzooError behind ``error``: itself, or the cause that Hydra's instantiate wrapped."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, GanzooError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def exit_on_ganzoo_error(fn: F) -> F:
    """Turn a :class:`GanzooError` raised by ``fn`` (also inside Hydra's ``InstantiationException``) into
    ``error: <one line>`` on stderr and exit status 1; other exceptions propagate unchanged."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            cause = ganzoo_cause(e)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
