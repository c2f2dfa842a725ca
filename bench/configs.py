"""The configs the bench trains with: ``python -m ganzoo.train``'s composition of an experiment, with a speed
variant's switches, as the full stack runs it (:func:`full_stack_config`) and as resolved values for the bare
Trainer and the plain loop (:func:`job_values`).

Hydra and ganzoo are imported when a function is called: composing needs ganzoo's config resolvers, whose
module loads Lightning, so the plain side gets resolved values from the driver instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bench.plans import PRECISIONS, Variant, experiment_overrides
from bench.synthetic import data_spec


def apply_variant(cfg: Any, variant: Variant) -> None:
    """Set the variant's ``model.channels_last`` / ``model.compile``; KeyError when the model config lacks one."""
    for key, value in (("channels_last", variant.channels_last), ("compile", variant.compile_setting)):
        if value and key not in cfg.model:
            raise KeyError(f"model.{key} is not in the {cfg.get('task_name', '?')} config of this ganzoo version")
        if key in cfg.model:
            cfg.model[key] = value


def compose(model: str, config: str, variant: Variant) -> Any:
    """The config ``python -m ganzoo.train <experiment overrides>`` would run, with the variant's switches.

    As ``ganzoo.train.compose_config`` (with ganzoo's config resolvers, from ``ganzoo.cli``). A switch the
    model config lacks raises KeyError (the variant cannot run on this version of ganzoo).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ganzoo.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=[*experiment_overrides(model, config), "paths.output_dir=outputs/bench"])
    apply_variant(cfg, variant)
    return cfg


def job_values(model: str, config: str, variant: Variant) -> dict[str, Any]:
    """What the bare and plain sides need of the composed config, resolved: the model config, the data's shape
    (:func:`bench.synthetic.data_spec`) and the logging interval."""
    from omegaconf import OmegaConf

    cfg = compose(model, config, variant)
    return {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": data_spec(cfg, model),
        "log_every_n_steps": int(cfg.trainer.log_every_n_steps),
    }


def full_stack_config(
    model: str,
    config: str,
    variant: Variant,
    device: torch.device,
    steps: int,
    output_dir: str,
    callbacks: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    seed: int = 42,
) -> Any:
    """The config of ``python -m ganzoo.train <experiment overrides> <overrides>`` (``compose_config``) for ``steps``
    iterations on ``device``, writing into ``output_dir``, with the bench's synthetic data instead of the
    dataset (:class:`bench.trainer_parts.SyntheticDataModule`), the metrics group removed (``~metrics``:
    evaluation steps are not training iterations), one epoch of ``steps`` batches (an experiment's
    ``trainer.limit_train_batches`` removed) and the ``callbacks`` entries appended to the default callbacks group.
    Everything else is the experiment's."""
    from omegaconf import OmegaConf, open_dict

    from ganzoo.train import compose_config

    cfg = compose_config([*experiment_overrides(model, config), *overrides], output_dir=output_dir)
    apply_variant(cfg, variant)
    spec = data_spec(cfg, model)
    # pix2pix's model.direction interpolates data.direction: kept, so the model config stays the experiment's.
    direction = {"direction": str(cfg.data.direction)} if "direction" in cfg.data else {}
    with open_dict(cfg):
        cfg.pop("metrics", None)
        cfg.seed = seed
        cfg.data = OmegaConf.create(
            {
                "_target_": "bench.trainer_parts.SyntheticDataModule",
                "name": str(cfg.data.get("name") or "synthetic"),
                **spec,
                **direction,
                "steps": steps,
                "pin_memory": device.type == "cuda",
            }
        )
        cfg.trainer.max_steps = steps
        cfg.trainer.max_epochs = 1
        # The run is one epoch of the synthetic loader, for every model: an experiment's shorter epochs
        # (pix2pix_fmnist: 250 batches) would end it before the timed window does.
        cfg.trainer.limit_train_batches = None
        cfg.trainer.precision = PRECISIONS[variant.precision]
        cfg.trainer.accelerator = "gpu" if device.type == "cuda" else "cpu"
        for key, entry in (callbacks or {}).items():
            cfg.callbacks[key] = entry
    return cfg
