"""Logger construction and the one function that sends images to whichever loggers a run has."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment

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


class _OfflineFallbackWandbLogger(WandbLogger):
    """A ``WandbLogger`` whose run goes offline when the server does not answer within ``init_timeout``
    (no network, a firewall, a W&B outage), instead of failing the training run."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns about the setting whenever it is passed
            self._wandb_init.pop("anonymous", None)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        import wandb

        if self._experiment is None and not self._offline:
            try:
                return super().experiment
            except wandb.errors.Error as error:
                save_dir = self._wandb_init.get("dir")
                log.warning(
                    "W&B: could not reach the server (%s); logging offline under %s; "
                    "upload later with `wandb sync %s/wandb/offline-run-*`",
                    str(error).splitlines()[0],
                    save_dir,
                    save_dir,
                )
                self._offline = True
                self._wandb_init["mode"] = "offline"
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
        elif isinstance(logger, TensorBoardLogger):
            for i, img in enumerate(images):
                logger.experiment.add_image(key if len(images) == 1 else f"{key}/{i}", img, global_step=step)
