"""``python -m ganzoo.evaluate``: FID/KID/IS, class statistics, precision/recall/density/coverage of a checkpoint
or of a set of images.

Examples::

    python -m ganzoo.evaluate ckpt=outputs/train/runs/<time>/checkpoints/last.ckpt
    python -m ganzoo.evaluate ckpt=.../best.ckpt metrics=inception num_samples=50000
    python -m ganzoo.evaluate images=samples.npz data=fashion_mnist

For a checkpoint it repeats the run's own evaluation (same data, metrics, latents and real statistics), so
the numbers equal those logged during training; the EMA generator is used where a model keeps one. The JSON
report's ``protocol`` says how they were measured (:meth:`ganzoo.metrics.Evaluation.protocol`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ganzoo.checkpoint import load_model
from ganzoo.cli import CONFIG_DIR, check_writable, exit_on_ganzoo_error, quiet_library_noise
from ganzoo.cpus import set_torch_threads
from ganzoo.data.folders import list_images
from ganzoo.data.image_file import load_image
from ganzoo.data.transforms import resize_square, to_channels
from ganzoo.errors import ConfigError, DataError
from ganzoo.loading import resolve_device
from ganzoo.metrics.classifier import has_labels
from ganzoo.metrics.evaluation import Evaluation, instantiate_for_data

log = logging.getLogger("ganzoo.evaluate")


def load_images(path: str | Path, channels: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images to score: uint8 (N, channels, image_size, image_size), and labels (N,) from an npz's ``y`` or None.

    ``path`` is a ``.npz`` (``x`` as (N, C, H, W) or (N, H, W, C)) or a folder of image files (recursive).
    Other sizes are resized (antialiased bilinear), other channel counts converted.
    """
    path = Path(path)
    labels = None
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise DataError(f"{path} contains no images: point images= at a folder of image files or an .npz")
        images = torch.stack([resize_square(load_image(str(f), channels), image_size) for f in files])
    elif path.suffix == ".npz" and path.is_file():
        with np.load(path) as archive:
            if "x" not in archive:
                raise DataError(f"{path} has no array 'x': save the images as x (uint8, N x C x H x W)")
            x = archive["x"]
            labels = torch.from_numpy(archive["y"].astype(np.int64)) if "y" in archive else None
        if x.dtype != np.uint8 or x.ndim != 4:
            raise DataError(f"{path}: x is {x.dtype} with shape {x.shape}, expected uint8 (N, C, H, W)")
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        if x.shape[1] not in (1, 3):
            raise DataError(
                f"{path}: x has shape {x.shape}, which is neither (N, C, H, W) nor (N, H, W, C) with 1 or 3 "
                "channels: save grey or RGB images"
            )
        images = resize_square(to_channels(torch.from_numpy(np.ascontiguousarray(x)), channels), image_size)
    else:
        raise ConfigError(f"images={path} is neither a folder nor an .npz file: pass one of those")
    if labels is not None and labels.shape != (len(images),):
        raise DataError(
            f"{path}: y has shape {tuple(labels.shape)} for {len(images)} images; expected ({len(images)},)"
        )
    return images, labels


def _default_metrics(datamodule: Any) -> DictConfig:
    """The evaluator a run on this data gets by default: the offline classifier where there are labels to
    train it on (or labelled data named by ``evaluator_data()``), Inception FID/IS otherwise."""
    labelled = has_labels(datamodule)
    return OmegaConf.load(Path(CONFIG_DIR) / "metrics" / f"{'classifier' if labelled else 'inception'}.yaml")


def _complete_data(cfg: DictConfig, run_config: dict[str, Any] | None) -> None:
    """Fill ``data`` from the checkpoint's run where the command line gave none."""
    with open_dict(cfg):
        if cfg.get("data") is None:
            if "data" not in (run_config or {}):
                raise ConfigError(
                    "images= needs the real data to compare with: add data=<dataset>, e.g. data=fashion_mnist"
                )
            cfg.data = run_config["data"]  # type: ignore[index]


def _complete_metrics(cfg: DictConfig, run_config: dict[str, Any] | None, datamodule: Any) -> None:
    """Fill ``metrics`` from the checkpoint's run (or the data's default evaluator) where the command line gave
    none, then apply the command line's evaluation values.

    A run started without metrics (``'~metrics'``) may still record a partial ``metrics`` entry, e.g. the
    sample counts ``debug=smoke`` sets: those are kept on top of the data's default evaluator.
    """
    with open_dict(cfg):
        if cfg.get("metrics") is None:
            recorded = (run_config or {}).get("metrics") or {}
            evaluation = recorded.get("evaluation") if isinstance(recorded, dict) else None
            if isinstance(evaluation, dict) and "_target_" in evaluation:
                cfg.metrics = recorded
            else:
                default = _default_metrics(datamodule)
                log.info(
                    "the checkpoint's run had no evaluation configured: using %s (pick one with metrics=...)",
                    default.evaluation.extractor._target_.rsplit(".", 1)[-1],
                )
                cfg.metrics = OmegaConf.merge(default, recorded) if isinstance(recorded, dict) else default
        evaluation = cfg.metrics.evaluation
        for key in ("num_samples", "seed", "batch_size", "real_split", "cache_dir"):
            if cfg.get(key) is not None:
                evaluation[key] = cfg[key]


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation ``cfg`` describes; returns the report that is also written as JSON."""
    quiet_library_noise()
    set_torch_threads()
    if (cfg.ckpt is None) == (cfg.images is None):
        raise ConfigError("pass exactly one of ckpt=<checkpoint> or images=<folder or .npz>")
    if cfg.images is not None and not Path(cfg.images).exists():
        raise DataError(f"images={cfg.images} does not exist: pass a folder of images or an .npz file")
    device = resolve_device(cfg.device)
    model = load_model(cfg.ckpt) if cfg.ckpt is not None else None
    run_config = model.run_config if model is not None else None
    _complete_data(cfg, run_config)
    # The data first: a missing dataset is reported before anything about the evaluator's weights.
    datamodule = instantiate(cfg.data)
    datamodule.check_available()
    _complete_metrics(cfg, run_config, datamodule)
    evaluation: Evaluation = instantiate_for_data(cfg.metrics.evaluation, datamodule, training=False)
    if model is None:  # read before the (possibly slow) real statistics, so a bad file fails at once
        images, labels = load_images(cfg.images, datamodule.channels, datamodule.image_size)
    datamodule.prepare_data()
    datamodule.setup()
    evaluation.setup(datamodule, device)
    if model is not None:
        values = evaluation.evaluate(model.to(device))
        source = {"ckpt": str(cfg.ckpt), "step": model.checkpoint_step}
    else:
        values = evaluation.evaluate_images(images, labels)
        source = {"images": str(cfg.images), "num_images": len(images)}
    return {
        **source,
        "metrics": values,
        "extractor": evaluation.name,
        "num_samples": evaluation.num_samples if model is not None else source["num_images"],
        "real": {
            "data": datamodule.name,
            "split": evaluation.real_split,
            "statistics": str(evaluation.statistics_file),
        },
        "seed": evaluation.seed,
        # Extractor, counts and metric settings behind every number above.
        "protocol": evaluation.protocol(model),
    }


def _report_path(cfg: DictConfig) -> Path:
    if cfg.out is not None:
        return Path(cfg.out)
    source = Path(cfg.ckpt if cfg.ckpt is not None else cfg.images)
    return source.with_name(f"{source.stem or source.name}_metrics.json")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
@exit_on_ganzoo_error
def main(cfg: DictConfig) -> None:
    out = None
    if (cfg.ckpt is None) != (cfg.images is None):  # otherwise evaluate() names the mistake
        # Before the evaluation: a report that cannot be written would lose its numbers at the end.
        out = check_writable(_report_path(cfg), "out")
    report = evaluate(cfg)
    for key, value in report["metrics"].items():
        print(f"{key} = {value:.6g}")
    out = out or _report_path(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
