"""Checks of a training run's settings that must fail before anything is built, each as one line naming the key.

:func:`check_settings` refuses model and trainer values that torch or Lightning would reject deep inside ``fit``
(or accept and train meaninglessly with); :func:`check_resume_settings` refuses to resume a checkpoint whose
architecture differs from the configured one, and lists the settings that differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ganzoo.errors import ConfigError


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Model settings checked before anything is built: key (under ``model.``) -> (test, what it must be, example).
#: The optimizers and losses would otherwise fail deep inside ``fit`` (``model.lr=-1``: torch's "Invalid
#: learning rate" traceback) or, worse, train with a meaningless value. Names follow the reference
#: implementations, so one table serves DCGAN, CycleGAN and BigGAN; a key a model does not have is skipped.
_MODEL_SETTINGS: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    **{
        key: (lambda v: _number(v) and v > 0, "a positive number", "2e-4") for key in ("lr", "G_lr", "D_lr", "adam_eps")
    },
    **{key: (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)", "0.5") for key in ("beta1", "G_B1", "D_B1")},
    **{key: (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)", "0.999") for key in ("beta2", "G_B2", "D_B2")},
    **{
        key: (lambda v: _number(v) and v >= 0, "a number >= 0", "10.0")
        for key in ("lambda_A", "lambda_B", "lambda_identity", "lambda_L1", "G_ortho", "D_ortho")
    },
    "ema_decay": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]", "0.9999"),
    "real_label": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]", "1.0"),
    **{
        key: (lambda v: _integer(v) and v >= 1, "a positive integer", "1")
        for key in ("batch_size", "num_D_steps", "num_D_accumulations", "num_G_accumulations", "epoch_count")
    },
    **{
        key: (lambda v: _integer(v) and v >= 0, "an integer >= 0", "0")
        for key in ("pool_size", "ema_start", "standing_stats", "standing_batch_size", "G_batch_size")
    },
    **{key: (lambda v: _integer(v) and v >= 0, "an integer >= 0", "100") for key in ("n_epochs", "n_epochs_decay")},
}

#: Trainer run lengths and intervals: key -> (smallest value, whether null is allowed, example).
_TRAINER_INTEGERS: dict[str, tuple[int, bool, str]] = {
    "max_steps": (-1, False, "1000"),
    "max_epochs": (-1, True, "10"),
    "min_steps": (0, True, "0"),
    "log_every_n_steps": (1, False, "50"),
    "accumulate_grad_batches": (1, False, "1"),
    "num_nodes": (1, False, "1"),
}


def check_settings(cfg: DictConfig) -> None:
    """Raise a one-line ConfigError naming the first invalid model or trainer setting, before any work.

    Checks the values of :data:`_MODEL_SETTINGS` under ``model`` and the integers of :data:`_TRAINER_INTEGERS`
    under ``trainer`` (``trainer.max_steps=abc`` reaches Lightning as a string).
    """
    model = cfg.get("model") or {}
    for key, (valid, what, example) in _MODEL_SETTINGS.items():
        if key in model and not valid(model[key]):
            raise ConfigError(f"model.{key}={model[key]!r} must be {what}: e.g. model.{key}={example}")
    trainer = cfg.get("trainer") or {}
    for key, (smallest, nullable, example) in _TRAINER_INTEGERS.items():
        if key not in trainer or (trainer[key] is None and nullable):
            continue
        value = trainer[key]
        if not _integer(value) or value < smallest:
            what = "an integer" + (f" >= {smallest}" if smallest else " >= 0") + (" or null" if nullable else "")
            if key in ("max_steps", "max_epochs"):
                what += " (-1: no limit)"
            raise ConfigError(f"trainer.{key}={value!r} must be {what}: e.g. trainer.{key}={example}")


def _flatten(config: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(_flatten(value, f"{prefix}.{key}"))
    return flat


def check_resume_settings(cfg: DictConfig, ckpt_path: str) -> None:
    """Refuse to resume ``ckpt_path`` with a different architecture, naming the settings that differ.

    Compares the checkpoint's recorded run (``data.image_size``, ``data.channels``, ``data.num_classes``) and
    model networks (``model.generator.*``, ``model.discriminator.*``) with this run's. Optimizer settings, run
    length and everything else may change on resume. A checkpoint of another model class, or one that records
    no config, is left to the checkpoint loader, which reports those in its own words.
    """
    try:  # memory-mapped: the tensors are not read
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable: loading it reports that
        return
    recorded = checkpoint.get("ganzoo") if isinstance(checkpoint, dict) else None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model_config"), dict):
        return
    saved_model = recorded["model_config"]
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if saved_model.get("_target_") != model.get("_target_"):
        return
    differences: dict[str, tuple[Any, Any]] = {}
    saved_data = (recorded.get("run_config") or {}).get("data") or {}
    for key in ("image_size", "channels", "num_classes"):
        if key in saved_data and saved_data[key] != cfg.data.get(key):
            differences[f"data.{key}"] = (saved_data[key], cfg.data.get(key))
    for net in ("generator", "discriminator"):
        saved, now = _flatten(saved_model.get(net), f"model.{net}"), _flatten(model.get(net), f"model.{net}")
        for key in sorted(saved.keys() | now.keys()):
            if saved.get(key) == now.get(key):
                continue
            # A value interpolated from data (${data.image_size}) is already named by its data key.
            parent, _, leaf = key.removeprefix("model.").rpartition(".")
            node = OmegaConf.select(cfg.model, parent)
            if differences and isinstance(node, DictConfig) and leaf in node and OmegaConf.is_interpolation(node, leaf):
                continue
            differences[key] = (saved.get(key), now.get(key))
    if differences:
        listed = ", ".join(f"{key}={old} (now {new})" for key, (old, new) in list(differences.items())[:4])
        more = f" and {len(differences) - 4} more" if len(differences) > 4 else ""
        fix = " ".join(f"{key}={old}" for key, (old, _) in list(differences.items())[:4])
        raise ConfigError(
            f"checkpoint {ckpt_path} was trained with other architecture settings: {listed}{more}: resume with "
            f"the checkpoint's values ({fix}), or start a new run without ckpt_path"
        )
