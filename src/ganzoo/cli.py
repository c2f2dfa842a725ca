"""What the ``python -m ganzoo.X`` entry points share: where the configs live and how errors reach the user."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganzoo.checkpoint import unwritable_reason
from ganzoo.cpus import set_torch_threads
from ganzoo.errors import ConfigError, ganzoo_cause

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")

# Arithmetic in configs, so that values that follow from others are never typed twice:
# ${sum:a,b} (CycleGAN's max_epochs = n_epochs + n_epochs_decay), ${prod:a,b,c} (BigGAN's loader batch =
# batch_size * num_D_steps * num_D_accumulations), ${max:a,b} (BigGAN's classes: at least one).
OmegaConf.register_new_resolver("sum", lambda *values: sum(values), replace=True)
OmegaConf.register_new_resolver("prod", lambda *values: math.prod(values), replace=True)
OmegaConf.register_new_resolver("max", lambda *values: max(values), replace=True)

log = logging.getLogger("ganzoo")
F = TypeVar("F", bound=Callable[..., Any])


def quiet_library_noise() -> None:
    """Silence messages that tell a ganzoo user nothing actionable, each matched by its own text, so that every
    other message of Lightning, PyTorch and torchmetrics still shows. Safe to call once per run of a sweep."""
    # Lightning's informational lines (rank_zero_info) that say nothing a ganzoo user can act on.
    lines = (
        "litlogger",  # an advert for Lightning's cloud logger
        # The model summary is ganzoo's callbacks.model_summary (null: none); Lightning says it skips its own.
        "Trainer already configured with model summary callbacks",
        "`Trainer.fit` stopped: `max_",  # ganzoo logs "finished at step N" and where the outputs are
        "GPU available: False, used: False",  # a CPU-only machine (a GPU left unused is still reported)
        "TPU available: False",
        "HPU available: False",
        "- CUDA_VISIBLE_DEVICES: [",  # LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]
        "Seed set to ",  # the seed is in the run's config (.hydra/config.yaml); a drawn one is logged by ganzoo
        # ganzoo logs the checkpoint and step it resumes from ("ckpt_path=last: resuming from ... (step N)").
        "Restoring states from the checkpoint path at ",
        "Restored all states from the checkpoint at ",
    )

    def drop_lightning_noise(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(line in message for line in lines)

    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.fabric.utilities.seed",
    ):
        logger = logging.getLogger(name)
        for previous in [f for f in logger.filters if getattr(f, "__name__", "") == drop_lightning_noise.__name__]:
            logger.removeFilter(previous)  # one filter, however many runs this process starts
        logger.addFilter(drop_lightning_noise)
    # Checkpoints are meant to hold the state after the step's updates; Lightning warns about that for every
    # manual-optimization module.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    # GANs have no validation step until metrics are configured; the datamodule still offers a val split.
    warnings.filterwarnings("ignore", message="You passed in a `val_dataloader` but have no `validation_step`")
    # ganzoo's models convert batches to channels_last in this hook (model.channels_last); that is intended.
    warnings.filterwarnings(
        "ignore", message="You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a"
    )
    # Lightning counts logging intervals across epochs, so a short epoch (a small dataset) still gets its rows.
    warnings.filterwarnings("ignore", message="The number of training batches .* is smaller than the logging interval")
    # ganzoo's data modules derive the position in the epoch from the step, so a mid-epoch resume is exact.
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    # The GPU-oriented data configs pin memory; on a CPU-only run PyTorch says it cannot, which changes nothing.
    warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true but no accelerator is found")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_gather is deprecated")
    # torchmetrics' KID and IS keep every feature, which is what ganzoo's evaluation sizes for.
    warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")


def prepare_training_process(cfg: DictConfig) -> None:
    """What a training process sets before it builds anything: quiet library warnings, its torch threads, the
    seed (``seed=null`` draws one and writes it back into ``cfg``), and the float settings below."""
    import lightning as L  # only training needs it; the other entry points keep their start-up light

    quiet_library_noise()
    # Before anything computes: each process's share of the CPUs (the DDP ranks on CPUs share them).
    set_torch_threads(cfg.get("trainer"))
    # seed=null draws a seed (shared with DDP workers through PL_GLOBAL_SEED); it is written back into the
    # config, and so into the logged hyperparameters and the data module, so every run can be repeated.
    seed = L.seed_everything(cfg.get("seed"), workers=True)
    if cfg.get("seed") is None:
        cfg.seed = seed
        logging.getLogger("ganzoo.train").info("seed=null: this run uses seed=%d", seed)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    # Subnormal floats (Adam's second moments of tiny gradients, near-zero activations) make x86 CPU
    # arithmetic many times slower: a BigGAN iteration on Fashion-MNIST took 4.5 s instead of 0.6 s.
    # Flushing them to zero changes values below 1e-38 only; GPUs flush them in most kernels anyway.
    torch.set_flush_denormal(True)


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


def instantiate_group(group: DictConfig | None, built: Mapping[str, Any] | None = None) -> list[Any]:
    """Build the entries of a config group like ``callbacks`` or ``logger``, in the group's order (Hydra and OmegaConf
    keep the order of the files; entries an experiment or ``+group.name=`` adds come after the group's own).

    A null entry is switched off. An entry named in ``built`` holds the place of that object, made elsewhere; its
    value only says from what (``callbacks.evaluation: metrics`` is the callback built from the metrics group). A
    None object is left out; an object whose name the group lacks comes first.
    """
    made = [obj for name, obj in (built or {}).items() if group is None or name not in group]
    for name, entry in (group or {}).items():
        if entry is not None and built is not None and name in built:
            made.append(built[name])
        elif entry is not None and "_target_" in entry:
            made.append(instantiate(entry))
    return [obj for obj in made if obj is not None]


@contextlib.contextmanager
def reported_as_config_error(group: str, command: str) -> Iterator[None]:
    """Inside: an error in Lightning's own checks of the arguments built from config group ``group`` becomes a
    ConfigError of one line that names the group and how to print its values, not a traceback. ganzoo's own
    errors pass unchanged."""
    try:
        yield
    except Exception as e:
        if ganzoo_cause(e) is not None:
            raise
        cause = e.__cause__ or e
        raise ConfigError(
            f"the {group} settings are invalid ({type(cause).__name__}: {cause}): fix the {group}.* value "
            f"(`{command} --cfg job` prints them all)"
        ) from None


def require_values(cfg: DictConfig, keys: Sequence[str], example: str) -> None:
    """Raise one ConfigError naming every key of ``keys`` that the command line left unset (``???``).

    ``example`` is a whole command that works, shown as the fix.
    """
    missing = [f"{key}=" for key in keys if OmegaConf.is_missing(cfg, key)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{', '.join(missing)} {verb} required: e.g. {example}")


def check_writable(path: str | os.PathLike[str], key: str, *, folder: bool = False) -> Path:
    """Fail now, before any work is done, if the output ``path`` given as ``key=`` cannot be written.

    ``path`` is a file to be written (``folder=False``) or a folder to write files into. Missing parent folders
    are fine (the writer creates them); the nearest one that exists must be a folder in which a file can be
    created, tried for real by :func:`ganzoo.checkpoint.unwritable_reason` (also on read-only file systems and as
    root). An existing ``path`` must be of the right
    kind, and an existing file must open for appending (which leaves it unchanged). Raises a ConfigError that
    names ``key``; returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    example = f"{key}=<a folder you can write to>/{path.name or 'out'}"

    def unwritable(reason: str) -> ConfigError:
        return ConfigError(f"{key}={path} cannot be written ({reason}): pass a writable location, e.g. {example}")

    if path.exists():
        if folder and not path.is_dir():
            raise unwritable("it is a file, not a folder")
        if not folder and path.is_dir():
            raise unwritable("it is a folder: name a file")
        if not folder:
            try:
                with open(path, "ab"):
                    pass
            except OSError as e:
                raise unwritable(e.strerror or type(e).__name__) from None
            return path
    reason = unwritable_reason(path if folder else path.parent)
    if reason is not None:
        raise unwritable(reason)
    return path
