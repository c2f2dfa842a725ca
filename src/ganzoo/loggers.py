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


def wandb_logger(
    save_dir: str,
    project: str = "ganzoo",
    name: str | None = None,
    group: str | None = None,
    offline: bool | None = None,
    init_timeout: float = 60.0,
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` that never waits on a network it cannot have.

    ``offline=None`` decides by itself: ``WANDB_MODE`` from the environment wins; otherwise, without
    credentials the run goes offline (said once), to be uploaded later with ``wandb sync``. With
    credentials, ``init_timeout`` bounds how long start-up may wait for the server.
    """
    import wandb

    global _offline_notice_given
    mode = os.environ.get("WANDB_MODE")
    if offline is None:
        offline = mode in ("offline", "dryrun", "disabled") or (mode is None and not wandb_credentials_present())
        if offline and mode is None and not _offline_notice_given and rank_zero_only.rank == 0:
            log.warning(
                "W&B: no credentials (WANDB_API_KEY or `wandb login`), logging offline under %s; "
                "upload later with `wandb sync %s/wandb/offline-run-*`",
                save_dir,
                save_dir,
            )
            _offline_notice_given = True
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(init_timeout=init_timeout, silent=True)
    return WandbLogger(
        save_dir=save_dir, project=project, name=name, group=group, offline=offline, settings=settings, **kwargs
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
