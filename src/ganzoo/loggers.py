"""Logger construction and the one function that sends images to whichever loggers a run has."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from ganzoo.compat import (
    csv_writer,
    existing_csv_writer,
    switch_wandb_offline,
    wandb_init_arguments,
    wandb_offline,
    wandb_run_started,
)

log = logging.getLogger(__name__)
_offline_notice_given = False


def wandb_credentials_present() -> bool:
    """True when W&B can authenticate: ``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _hydra_job() -> Any:
    """The Hydra config of the running job (``hydra.*``), or None outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


class _IterationSteps:
    """Logger mixin: every row's step counts the generator updates done when its values were taken.

    Lightning logs a training row with the index of the batch just finished (0 after the first update),
    while evaluations, sample sheets and checkpoints (``step_0000500.ckpt``) use ``global_step``, the updates
    done (0 before the first). Lightning's own rows are the ones it gives an ``epoch`` value (it adds that key
    exactly when the step is its batch counter); those are shifted by one, so ``step=500`` means "after 500
    iterations" in every row: losses, FID, images, checkpoints.
    """

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if step is not None and "epoch" in metrics:
            step += 1
        super().log_metrics(metrics, step)  # type: ignore[misc]


class _ContinuedMetricsFile(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued rather than deleted.

    What is kept is decided by :meth:`continue_from` (called when training starts): rows up to the step the run
    resumes from; a run starting from scratch replaces the file. Until then (or without that call) every earlier
    row is kept. The header becomes the union of the old and the new columns.
    """

    def __init__(self, log_dir: str) -> None:
        self._keep_until: int | None = None
        self._merged = False
        self.filesystem = get_filesystem(log_dir)
        super().__init__(log_dir)

    # Overrides the private hook Lightning's writer calls on creation (tests/unit/test_compat.py checks it still does).
    def _check_log_dir_exists(self) -> None:
        # Lightning deletes metrics.csv here; a resumed run appends to it instead (see _merge_existing).
        pass

    def continue_from(self, step: int) -> None:
        """Keep the rows of steps <= ``step`` (a resumed run's checkpoint) and drop later ones, which an earlier
        run logged after its last save; ``step=0`` starts the file over."""
        self._keep_until = step
        self._merged = False
        self._merge_existing()

    def _merge_existing(self) -> None:
        if self._merged:
            return
        self._merged = True
        if not self.filesystem.isfile(self.metrics_file_path):
            return
        with self.filesystem.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            header = list(reader.fieldnames or [])
        kept = rows if self._keep_until is None else [row for row in rows if self._before_resume(row)]
        if self._keep_until == 0 or not header:
            self.filesystem.rm_file(self.metrics_file_path)
            return
        self.metrics_keys = sorted(set(self.metrics_keys) | set(header))
        if len(kept) != len(rows) or header != self.metrics_keys:
            with self.filesystem.open(self.metrics_file_path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)

    def _before_resume(self, row: dict[str, str]) -> bool:
        try:
            return float(row.get("step") or "nan") <= (self._keep_until or 0)
        except ValueError:
            return False

    def save(self) -> None:
        self._merge_existing()
        super().save()

    def ensure_file(self) -> None:
        """Write the header (``step`` and every column seen) when the run logged no row at all."""
        self._merge_existing()
        if not self.filesystem.isfile(self.metrics_file_path):
            with self.filesystem.open(self.metrics_file_path, "w", newline="") as file:
                csv.DictWriter(file, fieldnames=sorted({"step", *self.metrics_keys})).writeheader()


class CSVLogger(_IterationSteps, LightningCSVLogger):
    """Lightning's ``CSVLogger`` writing ``<save_dir>/<name>/metrics.csv`` with ganzoo's step numbering (a row at
    step N holds values after N generator updates, training and evaluation alike).

    A run resumed into the same directory (``hydra.run.dir=<run> ckpt_path=last``) appends to the file: the rows
    up to the resumed checkpoint's step stay, later ones (logged by the earlier run after its last save, so
    trained again now) are dropped, and new columns join the header. A run that starts from scratch in a
    directory with a ``metrics.csv`` replaces it. The file exists after every run, also one that logged nothing.
    Which of the two applies is told by :class:`ganzoo.callbacks.MetricsLog` (``callbacks.metrics_log``); without
    that callback an existing file is continued as it is.
    """

    def __init__(
        self,
        save_dir: str,
        name: str = "csv",
        version: str = "",
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(
            save_dir, name=name, version=version, prefix=prefix, flush_logs_every_n_steps=flush_logs_every_n_steps
        )

    @property
    @rank_zero_experiment
    def experiment(self) -> _ContinuedMetricsFile:
        return csv_writer(self, _ContinuedMetricsFile)

    @rank_zero_only
    def continue_from(self, step: int) -> None:
        """The run trains from ``step`` (0: from scratch): keep the file's rows up to it, drop the rest."""
        self.experiment.continue_from(step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        writer = existing_csv_writer(self)
        if writer is not None:
            writer.ensure_file()


class TensorBoardLogger(_IterationSteps, LightningTensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` with ganzoo's step numbering (see :class:`CSVLogger`)."""


class _OfflineFallbackWandbLogger(_IterationSteps, WandbLogger):
    """A ``WandbLogger`` whose run goes offline when the server does not answer within ``init_timeout``
    (no network, a firewall, a W&B outage), instead of failing the training run; ganzoo's step numbering
    (see :class:`CSVLogger`) on its ``trainer/global_step`` axis."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        init_arguments = wandb_init_arguments(self)
        if init_arguments.get("anonymous") is None:  # wandb warns about the setting whenever it is passed
            init_arguments.pop("anonymous", None)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        import wandb

        if not wandb_run_started(self) and not wandb_offline(self):
            try:
                return super().experiment
            except wandb.errors.Error as error:
                save_dir = wandb_init_arguments(self).get("dir")
                log.warning(
                    "W&B: could not reach the server (%s); logging offline under %s; "
                    "upload later with `wandb sync %s/wandb/offline-run-*`",
                    str(error).splitlines()[0],
                    save_dir,
                    save_dir,
                )
                switch_wandb_offline(self)
        return super().experiment


def wandb_logger(
    save_dir: str,
    project: str = "ganzoo",
    name: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: list[str] | None = None,
    notes: str | None = None,
    offline: bool | None = None,
    init_timeout: float = 60.0,
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` that never waits on a network it cannot have, one W&B run per Hydra job.

    ``offline=None`` decides by itself: ``WANDB_MODE`` from the environment wins; otherwise, without
    credentials the run goes offline (said once), to be uploaded later with ``wandb sync``. With
    credentials, start-up waits at most ``init_timeout`` seconds for the server and then logs offline.
    After start-up W&B uploads in a background process; training never waits for it.

    In a Hydra multirun (``-m``, Optuna) every job is a run of its own: its ``name`` gets the job number,
    ``job_type`` defaults to ``sweep-<sweep directory name>`` (W&B's "group by group, job type" shows each
    sweep of an experiment together) and ``notes`` to the job's overrides. Single runs get ``job_type`` "train".
    """
    import wandb

    global _offline_notice_given
    mode = os.environ.get("WANDB_MODE")
    if offline is None:
        # WANDB_MODE=disabled is left to wandb (offline=True would make Lightning switch it to dryrun).
        offline = mode in ("offline", "dryrun") or (mode is None and not wandb_credentials_present())
        if offline and mode is None and not _offline_notice_given and rank_zero_only.rank == 0:
            log.warning(
                "W&B: no credentials (WANDB_API_KEY or `wandb login`), logging offline under %s; "
                "upload later with `wandb sync %s/wandb/offline-run-*`",
                save_dir,
                save_dir,
            )
            _offline_notice_given = True
    hydra = _hydra_job()
    if hydra is not None:
        from hydra.types import RunMode

        if hydra.mode == RunMode.MULTIRUN:
            name = f"{name}-{hydra.job.num}" if name else None
            job_type = job_type or f"sweep-{Path(str(hydra.sweep.dir)).name}"[:64]
        if notes is None and hydra.overrides.task:
            notes = " ".join(hydra.overrides.task)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(init_timeout=init_timeout, silent=True)
    return _OfflineFallbackWandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        job_type=job_type or "train",
        tags=list(tags) if tags else None,
        notes=notes,
        offline=offline,
        settings=settings,
        **kwargs,
    )


def finish_wandb_run(exit_code: int = 0) -> None:
    """Close the open W&B run, if any, so that each job of a multirun gets a run of its own; a non-zero
    ``exit_code`` marks it failed. Runs without W&B (wandb never imported) are left alone."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def log_images(
    trainer: Trainer, key: str, images: list[torch.Tensor], step: int, captions: list[str] | None = None
) -> None:
    """Send uint8 images (C, H, W) to every logger of ``trainer`` that shows images (W&B, TensorBoard).

    CSV runs keep the PNG files that the callbacks write next to the metrics.
    """
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            arrays = [img.permute(1, 2, 0).squeeze(-1).cpu().numpy() for img in images]
            logger.log_image(key=key, images=arrays, step=step, caption=captions)
        elif isinstance(logger, LightningTensorBoardLogger):
            for i, img in enumerate(images):
                logger.experiment.add_image(key if len(images) == 1 else f"{key}/{i}", img, global_step=step)
