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

import logging
import os
import sys
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from ganzoo.callbacks import (
    BestCheckpoint,
    EvaluationCallback,
    NonFiniteGuard,
    PreemptionCheckpoint,
    SampleGrid,
    TranslationGrid,
)
from ganzoo.checkpoint import RESUME_ENV, AtomicCheckpointIO, resolve_resume
from ganzoo.cli import CONFIG_DIR, exit_on_ganzoo_error, quiet_library_noise
from ganzoo.cpus import set_torch_threads
from ganzoo.errors import ConfigError, ganzoo_cause
from ganzoo.layer_sync import CrossReplicaBatchNormSync
from ganzoo.loop import NoProfiler
from ganzoo.metrics.evaluation import instantiate_for_data
from ganzoo.settings import check_resume_settings, check_settings

log = logging.getLogger("ganzoo.train")


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Build every entry of a config group like ``callbacks`` or ``logger`` (null entries are switched off)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None and "_target_" in entry]


def _applies(callback: Any, model: Any) -> bool:
    applies_to = getattr(callback, "applies_to", None)
    return applies_to(model) if callable(applies_to) else True


def _finish_wandb(exit_code: int = 0) -> None:
    """Close the W&B run so that each multirun job gets a run of its own; a non-zero code marks it failed."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job described by ``cfg``; returns the final logged metrics."""
    quiet_library_noise()
    # Before anything computes: each process's share of the CPUs (the DDP ranks on CPUs share them).
    set_torch_threads(cfg.get("trainer"))
    # seed=null draws a seed (shared with DDP workers through PL_GLOBAL_SEED); it is written back into the
    # config, and so into the logged hyperparameters and the data module, so every run can be repeated.
    seed = L.seed_everything(cfg.get("seed"), workers=True)
    if cfg.get("seed") is None:
        cfg.seed = seed
        log.info("seed=null: this run uses seed=%d", seed)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    # Subnormal floats (Adam's second moments of tiny gradients, near-zero activations) make x86 CPU
    # arithmetic many times slower: a BigGAN iteration on Fashion-MNIST took 4.5 s instead of 0.6 s.
    # Flushing them to zero changes values below 1e-38 only; GPUs flush them in most kernels anyway.
    torch.set_flush_denormal(True)

    check_settings(cfg)
    ckpt_path, complete = resolve_resume(cfg)
    if complete:
        return {}
    if ckpt_path is not None:
        check_resume_settings(cfg, ckpt_path)

    datamodule = instantiate(cfg.data)
    # The data first: a missing dataset is what a user must hear about before the evaluator's weights.
    datamodule.check_available()
    # The whole run config, data included, is logged below. Lightning would also merge the datamodule's
    # hparams into the model's and refuse equal names with different meanings (BigGAN's batch_size is per D
    # step, the loader's is per iteration).
    datamodule._log_hyperparams = False
    model = instantiate(cfg.model, _convert_="all")
    model.model_config = OmegaConf.to_container(cfg.model, resolve=True)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)

    # Callbacks with nothing to do in this run (a translation sheet of a DCGAN, a best checkpoint without metrics)
    # stay out of the trainer: Lightning calls every callback several times per iteration.
    callbacks = [cb for cb in _instantiate_group(cfg.get("callbacks")) if _applies(cb, model)]
    if cfg.get("metrics") and "_target_" in cfg.metrics:
        callbacks.insert(0, instantiate_for_data(cfg.metrics, datamodule, training=True))
    # The non-finite guard first, so a diverged step is neither evaluated nor sampled nor saved; preemption
    # next, so a stop signal saves right after the iteration, before slower per-step callbacks.
    callbacks.sort(
        key=lambda cb: 0 if isinstance(cb, NonFiniteGuard) else 1 if isinstance(cb, PreemptionCheckpoint) else 2
    )
    loggers = _instantiate_group(cfg.get("logger"))
    plugins: list[Any] = [AtomicCheckpointIO()]
    if cfg.trainer.get("sync_batchnorm"):
        plugins.append(CrossReplicaBatchNormSync())  # BigGAN's batch norms too, and on CPUs (gloo)
    try:
        trainer = instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=plugins,
            **_progress_bar_switch(cfg, callbacks),
            **({} if cfg.trainer.get("profiler") else {"profiler": NoProfiler()}),
        )
    except Exception as e:
        if ganzoo_cause(e) is not None:
            raise
        # Lightning's own checks of the trainer's arguments: one line naming the group, not a traceback.
        cause = e.__cause__ or e
        raise ConfigError(
            f"the trainer settings are invalid ({type(cause).__name__}: {cause}): fix the trainer.* value "
            "(`python -m ganzoo.train --cfg job` prints them all)"
        ) from None
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    finished = False
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        finished = True
    finally:
        os.environ.pop(RESUME_ENV, None)
        _finish_wandb(exit_code=0 if finished else 1)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    if trainer.is_global_zero:
        log.info("finished at step %d; outputs in %s", trainer.global_step, cfg.paths.output_dir)
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        if last:
            log.info("checkpoint: %s", last)
        grids = [cb for cb in trainer.callbacks if isinstance(cb, SampleGrid | TranslationGrid) and cb.last_written]
        for grid in grids:
            log.info("samples: %s", grid.last_written)
        _log_best(trainer)
    return metrics


def _progress_bar_switch(cfg: DictConfig, callbacks: list[Any]) -> dict[str, bool]:
    """``enable_progress_bar`` for the Trainer: the bar is ``callbacks.progress_bar``; without one (null) there is
    none, rather than the default bar Lightning adds. A trainer config with ``enable_progress_bar: false``
    removes a configured one (Lightning would refuse the pair)."""
    if cfg.trainer.get("enable_progress_bar", True) is False:
        callbacks[:] = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    return {"enable_progress_bar": any(isinstance(cb, ProgressBar) for cb in callbacks)}


def _log_best(trainer: L.Trainer) -> None:
    """The run summary's line on the best evaluation: value, step and checkpoint."""
    for evaluation in (cb for cb in trainer.callbacks if isinstance(cb, EvaluationCallback)):
        best = evaluation.best()
        if best is None:
            continue
        step, value = best
        saved = [
            cb.best_model_path for cb in trainer.callbacks if isinstance(cb, BestCheckpoint) and cb.best_model_path
        ]
        where = f"; checkpoint: {saved[0]}" if saved else ""
        log.info("best %s = %.4f at step %d%s", evaluation.monitor, value, step, where)


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
