"""``python -m ganzoo.train``: compose the Hydra config, build data, model, loggers and trainer, fit.

Examples::

    python -m ganzoo.train                                  # DCGAN on Fashion-MNIST, 32x32
    python -m ganzoo.train experiment=dcgan_cifar10 logger=wandb
    python -m ganzoo.train ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt   # resume
    python -m ganzoo.train hydra.run.dir=outputs/train/runs/<time> ckpt_path=last     # resume that run's newest
    python -m ganzoo.train -m model.lr=1e-4,2e-4           # one job per value
    python -m ganzoo.train --cfg job                        # print the composed config
"""

from __future__ import annotations

import os
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganzoo.callbacks.progress import progress_bar_arguments
from ganzoo.checkpoint import RESUME_ENV, AtomicCheckpointIO, resolve_resume
from ganzoo.cli import (
    CONFIG_DIR,
    exit_on_ganzoo_error,
    instantiate_group,
    prepare_training_process,
    reported_as_config_error,
)
from ganzoo.layer_sync import CrossReplicaBatchNormSync
from ganzoo.loggers import finish_wandb_run
from ganzoo.loop import NoProfiler
from ganzoo.metrics.evaluation import instantiate_for_data
from ganzoo.settings import check_resume_settings, check_settings


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job described by ``cfg``; returns the final logged metrics. The closing report is the
    ``callbacks.run_summary`` callback's."""
    prepare_training_process(cfg)
    check_settings(cfg)
    ckpt_path, complete = resolve_resume(cfg)
    if complete:
        return {}
    if ckpt_path is not None:
        check_resume_settings(cfg, ckpt_path)

    datamodule = instantiate(cfg.data)
    # The data first: a missing dataset is what a user must hear about before the evaluator's weights.
    datamodule.check_available()
    model = instantiate(cfg.model, _convert_="all")
    model.model_config = OmegaConf.to_container(cfg.model, resolve=True)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    model.check_data(datamodule)

    # In the order of conf/callbacks (the non-finite guard first), the metrics group's callback at `evaluation`.
    evaluation = None
    if cfg.get("metrics") and "_target_" in cfg.metrics:
        evaluation = instantiate_for_data(cfg.metrics, datamodule, training=True)
    callbacks = instantiate_group(cfg.get("callbacks"), built={"evaluation": evaluation})
    # Callbacks with nothing to do in this run (a translation sheet of a DCGAN, a best checkpoint without metrics)
    # stay out of the trainer: Lightning calls every callback several times per iteration.
    callbacks = [cb for cb in callbacks if not callable(getattr(cb, "applies_to", None)) or cb.applies_to(model)]
    loggers = instantiate_group(cfg.get("logger"))
    plugins: list[Any] = [AtomicCheckpointIO()]
    if cfg.trainer.get("sync_batchnorm"):
        plugins.append(CrossReplicaBatchNormSync())  # BigGAN's batch norms too, and on CPUs (gloo)
    with reported_as_config_error("trainer", "python -m ganzoo.train"):
        trainer = instantiate(
            cfg.trainer,
            **progress_bar_arguments(callbacks, cfg.trainer.get("enable_progress_bar")),
            logger=loggers or False,
            plugins=plugins,
            **({} if cfg.trainer.get("profiler") else {"profiler": NoProfiler()}),
        )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    finished = False
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        finished = True
    finally:
        os.environ.pop(RESUME_ENV, None)
        finish_wandb_run(exit_code=0 if finished else 1)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}


def compose_config(overrides: list[str] | tuple[str, ...] = (), output_dir: str = "outputs/interactive") -> DictConfig:
    """The config ``python -m ganzoo.train <overrides>`` would run, for notebooks and scripts.

    Outside a Hydra run there is no per-run directory, so outputs go to ``output_dir``.
    """
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@exit_on_ganzoo_error
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    target = cfg.get("optimized_metric")
    return metrics.get(target) if target else None


if __name__ == "__main__":
    main()
