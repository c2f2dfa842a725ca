"""The private Lightning, Hydra-launcher and torchmetrics internals ganzoo uses, in one place.

These libraries have no public API for what ganzoo needs here. Each use is one small function whose docstring
names the internal it relies on (checked with Lightning 2.6, torchmetrics 1.9) and what happens when a release
removes it: a public fallback where one exists (slower or less precise, never wrong), otherwise an
``AttributeError`` naming the attribute. ``tests/unit/test_compat.py`` runs every function on the real library
object and fails naming the function when an upgrade changes what it relies on; only this module then needs
updating.

Two private hooks are overridden in subclasses rather than called, since the library calls them:
``ModelCheckpoint._save_checkpoint`` (:class:`ganzoo.callbacks.GANCheckpoint`, through
:func:`write_checkpoint_file`) and ``ExperimentWriter._check_log_dir_exists`` (``ganzoo.loggers``); the tests
check that the library still calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

if TYPE_CHECKING:  # imported by the callers already; not loaded here for the many modules that need none of them
    from lightning.pytorch.loggers import CSVLogger, WandbLogger
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

# ------------------------------------------------------------------------------------------- training loop


def batches_stepped(trainer: Trainer) -> int:
    """Training batches completed before the current one over the whole run (resumes included): the count
    Lightning's logger connector numbers log steps by.

    Relies on ``fit_loop.epoch_loop._batches_that_stepped`` (Lightning 2.x). Without it: ``trainer.global_step``,
    which equals it for ganzoo's models (one generator update per batch) before the batch's generator update.
    """
    try:
        return int(trainer.fit_loop.epoch_loop._batches_that_stepped)
    except AttributeError:
        return trainer.global_step


def current_batch_index(trainer: Trainer) -> int:
    """Index of the batch being trained on within its epoch (the ``batch_idx`` of the hooks).

    Relies on ``fit_loop.epoch_loop.batch_idx`` (Lightning 2.x, undocumented); without it: AttributeError.
    """
    return int(trainer.fit_loop.epoch_loop.batch_idx)


def step_logged_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The tensors logged with ``self.log`` in the current training step, by name, without a host sync.

    Read from the trainer's result collection (``trainer._results``, its ``valid_items()`` and each result's
    ``_forward_cache`` and ``meta``: Lightning 2.x) before Lightning's end-of-step bookkeeping, which converts
    progress-bar values to numbers. Without them: ``trainer.callback_metrics``, which holds the same values once
    the step has ended.
    """
    try:
        found: dict[str, Any] = {}
        for _, metric in trainer._results.valid_items():
            cached = metric._forward_cache
            if metric.meta.on_step and torch.is_tensor(cached):
                found[metric.meta.name] = cached
        return found
    except AttributeError:
        return {name: value for name, value in trainer.callback_metrics.items() if torch.is_tensor(value)}


def disable_sigterm_broadcast(trainer: Trainer) -> None:
    """Stop Lightning's training loop from broadcasting its SIGTERM flag at every iteration under DDP.

    Lightning 2.x sends the flag from a device tensor and reads it back (``.item()``) at each iteration
    (``fit_loop.epoch_loop._broadcast_sigterm_tensor``), which makes every process wait for its GPU;
    :class:`~ganzoo.callbacks.PreemptionCheckpoint` handles SIGTERM itself and calls this. Without the private
    method nothing changes (the broadcast stays, and so does the wait).
    """
    loop = trainer.fit_loop.epoch_loop
    if hasattr(loop, "_broadcast_sigterm_tensor"):
        loop._broadcast_sigterm_tensor = lambda: None


# ------------------------------------------------------------------------------------------ signal handlers


def call_after_signal_registration(trainer: Trainer, action: Callable[[], None]) -> bool:
    """Make ``trainer`` call ``action()`` right after it registers its own signal handlers, which it does in
    ``fit`` after ``on_fit_start`` and before the loops start (and before DataLoader workers fork).

    Relies on ``trainer._signal_connector.register_signal_handlers`` (Lightning 2.x), replaced on that one
    connector until :func:`stop_calling_after_signal_registration`. Returns False when it is gone: nothing
    changes, and a caller that installs handlers must do so again in ``on_train_start``.
    """
    connector = getattr(trainer, "_signal_connector", None)
    register = getattr(connector, "register_signal_handlers", None)
    if register is None:
        return False

    def register_then_act() -> None:
        register()
        action()

    connector.register_signal_handlers = register_then_act  # type: ignore[union-attr]
    return True


def stop_calling_after_signal_registration(trainer: Trainer) -> None:
    """Undo :func:`call_after_signal_registration` (the connector's own method applies again)."""
    connector = getattr(trainer, "_signal_connector", None)
    if connector is not None:
        connector.__dict__.pop("register_signal_handlers", None)


def signal_handlers_restored_at_teardown(trainer: Trainer) -> dict[Any, Any] | None:
    """The handlers, by signal, that the trainer puts back when its run ends (those it found when it
    registered its own): a live dict, so changing an entry changes what is restored.

    Relies on ``trainer._signal_connector._original_handlers`` (Lightning 2.x). None when it is gone: the caller
    cannot correct what Lightning restores, and after an exception a handler set during the fit may stay.
    """
    handlers = getattr(getattr(trainer, "_signal_connector", None), "_original_handlers", None)
    return handlers if isinstance(handlers, dict) else None


# --------------------------------------------------------------------------------------------- checkpoints


def write_checkpoint_file(callback: ModelCheckpoint, trainer: Trainer, filepath: str) -> None:
    """``ModelCheckpoint``'s own write of one checkpoint file: ``trainer.save_checkpoint`` plus its bookkeeping
    (the step saved, the file saved last, the loggers told).

    Relies on ``ModelCheckpoint._save_checkpoint(trainer, filepath)`` (Lightning 2.x), which every periodic,
    top-k and last save goes through (:class:`~ganzoo.callbacks.GANCheckpoint` overrides it to turn a failed
    write into one error line). When it is gone the override is never called and a failed write is a
    traceback; this function raises AttributeError.
    """
    ModelCheckpoint._save_checkpoint(callback, trainer, filepath)


def skips_checkpoint_now(callback: ModelCheckpoint, trainer: Trainer) -> bool:
    """Whether ``callback`` saves nothing at this point: ``fast_dev_run``, not fitting, the sanity check, or this
    step saved already.

    Relies on ``ModelCheckpoint._should_skip_saving_checkpoint`` (Lightning 2.x); without it: AttributeError.
    """
    return bool(callback._should_skip_saving_checkpoint(trainer))


def mark_step_saved(callback: ModelCheckpoint, step: int) -> None:
    """Record ``step`` as saved by ``callback`` (-1: no step), which decides :func:`skips_checkpoint_now`.

    Relies on ``ModelCheckpoint._last_global_step_saved`` (Lightning 2.x). When it is gone the value set here
    is ignored: a step may be saved twice, or (with -1) not saved again.
    """
    callback._last_global_step_saved = step


def checkpoint_candidates(callback: ModelCheckpoint, trainer: Trainer) -> dict[str, torch.Tensor]:
    """The values a checkpoint name and the monitored metric are taken from: the trainer's callback metrics
    with ``epoch`` and ``step`` as integer tensors.

    Relies on ``ModelCheckpoint._monitor_candidates`` (Lightning 2.x); without it: AttributeError.
    """
    return callback._monitor_candidates(trainer)


def save_last_checkpoint_file(callback: ModelCheckpoint, trainer: Trainer) -> None:
    """Write ``callback``'s ``last.ckpt`` (its ``save_last`` name and link rules) for the current step.

    Relies on ``ModelCheckpoint._save_last_checkpoint(trainer, candidates)`` (Lightning 2.x); without it:
    AttributeError.
    """
    callback._save_last_checkpoint(trainer, checkpoint_candidates(callback, trainer))


def save_top_k_checkpoint(callback: ModelCheckpoint, trainer: Trainer, candidates: dict[str, Any]) -> None:
    """Offer the current state to ``callback``'s top-k: saved when its monitored value in ``candidates`` is
    among the ``save_top_k`` best (the worse file removed).

    Relies on ``ModelCheckpoint._save_topk_checkpoint(trainer, candidates)`` (Lightning 2.x); without it:
    AttributeError.
    """
    callback._save_topk_checkpoint(trainer, candidates)


# ------------------------------------------------------------------------------------------------ loggers

Writer = TypeVar("Writer")


def csv_writer(logger: CSVLogger, make: Callable[[str], Writer]) -> Writer:
    """The writer of ``logger``'s ``metrics.csv``, made by ``make(log_dir)`` (in a folder created then) on
    first use and kept by the logger.

    Relies on ``CSVLogger._experiment`` and ``CSVLogger._fs`` (Lightning 2.x); without them: AttributeError.
    """
    if logger._experiment is None:
        logger._fs.makedirs(logger.root_dir, exist_ok=True)
        logger._experiment = make(logger.log_dir)
    return logger._experiment  # type: ignore[return-value]


def existing_csv_writer(logger: CSVLogger) -> Any | None:
    """The writer :func:`csv_writer` made for ``logger``, or None before its first use.

    Relies on ``CSVLogger._experiment`` (Lightning 2.x); without it: AttributeError.
    """
    return logger._experiment


def wandb_init_arguments(logger: WandbLogger) -> dict[str, Any]:
    """The keyword arguments ``logger`` passes to ``wandb.init`` when it starts its run (``dir``, ``mode``,
    ``anonymous``, ...): a live dict, so a change before the run starts changes the run.

    Relies on ``WandbLogger._wandb_init`` (Lightning 2.x); without it: AttributeError.
    """
    return logger._wandb_init


def wandb_run_started(logger: WandbLogger) -> bool:
    """Whether ``logger`` has started (or attached to) its W&B run.

    Relies on ``WandbLogger._experiment`` (Lightning 2.x); without it: AttributeError.
    """
    return logger._experiment is not None


def wandb_offline(logger: WandbLogger) -> bool:
    """Whether ``logger`` starts its run offline (``offline=True``, or :func:`switch_wandb_offline`).

    Relies on ``WandbLogger._offline`` (Lightning 2.x); without it: AttributeError.
    """
    return bool(logger._offline)


def switch_wandb_offline(logger: WandbLogger) -> None:
    """Make ``logger`` start its run offline, as if made with ``offline=True`` (before the run starts).

    Relies on ``WandbLogger._offline`` and ``_wandb_init`` (Lightning 2.x). When they are gone the run is
    started online again.
    """
    logger._offline = True
    wandb_init_arguments(logger)["mode"] = "offline"


# --------------------------------------------------------------------------------------- DDP under Hydra

#: How Lightning builds the command and working directory of DDP process ``local_rank`` inside a Hydra job.
ChildCommand = Callable[[int], tuple[list[str], str]]


def replace_hydra_child_command(command: ChildCommand) -> ChildCommand:
    """Make Lightning start the DDP processes of a Hydra job with ``command(local_rank)`` -> (argv, cwd);
    returns the function it used before (pass it back here to restore it).

    Relies on ``lightning.pytorch.strategies.launchers.subprocess_script._hydra_subprocess_cmd`` (Lightning 2.x),
    looked up by the launcher each time it starts the processes. When it is gone the children are started by
    Lightning's own command (each child of a multirun reruns the whole sweep); this function raises
    AttributeError.
    """
    from lightning.pytorch.strategies.launchers import subprocess_script

    previous = subprocess_script._hydra_subprocess_cmd
    subprocess_script._hydra_subprocess_cmd = command
    return previous


# ------------------------------------------------------------------------------------- torchmetrics states

#: FrechetInceptionDistance's states of the real side (sum, sum of outer products, count), by name.
_FID_REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


def fid_real_statistics(fid: FrechetInceptionDistance) -> dict[str, torch.Tensor]:
    """Copies of ``fid``'s real-side states: ``real_features_sum`` (D,) float64, ``real_features_cov_sum``
    (D, D) float64 (the sum of the features' outer products) and ``real_features_num_samples`` () int64.

    Relies on those torchmetrics 1.x state names (``add_state`` in ``FrechetInceptionDistance.__init__``);
    without them: AttributeError.
    """
    return {name: getattr(fid, name).clone() for name in _FID_REAL_STATES}


def empty_fid_real_statistics(num_features: int) -> dict[str, torch.Tensor]:
    """Real-side states of ``num_features`` features holding no images, shaped as
    :func:`fid_real_statistics` returns them (zeros, on the CPU)."""
    return {
        "real_features_sum": torch.zeros(num_features, dtype=torch.float64),
        "real_features_cov_sum": torch.zeros(num_features, num_features, dtype=torch.float64),
        "real_features_num_samples": torch.tensor(0),
    }


def set_fid_real_statistics(fid: FrechetInceptionDistance, statistics: Mapping[str, torch.Tensor]) -> None:
    """Use ``statistics`` (from :func:`fid_real_statistics`) as ``fid``'s real side (copied).

    Relies on the torchmetrics 1.x state names; when they change ``fid`` would compute from states nothing
    fills (set here under names it no longer reads), so this raises AttributeError first.
    """
    for name in _FID_REAL_STATES:
        if not hasattr(fid, name):
            raise AttributeError(f"FrechetInceptionDistance has no state {name!r}")
        setattr(fid, name, statistics[name].clone())


def set_kid_real_features(kid: KernelInceptionDistance, features: torch.Tensor) -> None:
    """Use ``features`` (N, D) as ``kid``'s real side, replacing what it held. The tensor itself, not a copy (KID only
    reads it; 50,000 Inception features take 0.4 GB): the caller must not change it in place.

    Relies on the ``real_features`` list state (torchmetrics 1.x); raises AttributeError when it is gone.
    """
    if not hasattr(kid, "real_features"):
        raise AttributeError("KernelInceptionDistance has no state 'real_features'")
    kid.real_features = [features]


def set_kid_subset_size(kid: KernelInceptionDistance, subset_size: int) -> None:
    """Draw ``subset_size`` features from each side for every KID subset from now on (the constructor's
    ``subset_size``; it must not exceed either side's count when computing).

    Relies on the ``subset_size`` attribute that ``KernelInceptionDistance.compute`` reads (torchmetrics 1.x);
    raises AttributeError when it is gone.
    """
    if not hasattr(kid, "subset_size"):
        raise AttributeError("KernelInceptionDistance has no attribute 'subset_size'")
    kid.subset_size = subset_size
