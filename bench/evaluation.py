"""Evaluation throughput: images per second through the FID feature extractor each config evaluates with.

The extractor is the Fashion-MNIST classifier (untrained) or InceptionV3 (with random weights when the real file
is not in torch.hub's cache: the speed is the same), timed alone on uint8 batches and after generating
(translating, for CycleGAN and pix2pix) and quantising the images as the evaluation callback does; one process
per config, median batch time.
"""

from __future__ import annotations

import datetime
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench import REPO
from bench.configs import compose
from bench.plans import EVAL_PLANS, QUICK_EVAL_PLAN, Variant
from bench.report import fmt_rate
from bench.synthetic import IMAGE_PAIR_MODELS
from bench.timing import time_batches
from bench.workers import WORKER_MODULE, log, run_subprocess, training_settings


@dataclass
class EvalJob:
    """One evaluation measurement: a (model, config)'s extractor, ``warmup`` + ``measured`` batches of at most
    ``max_batch`` images."""

    model: str
    config: str
    device: str
    warmup: int
    measured: int
    max_batch: int
    seed: int = 42

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EvalJob:
        return cls(**json.loads(text))


def random_inception_weights(tmp: Path) -> tuple[Path, str]:
    """The Inception weights file to time with: torch.hub's real one when present, else random weights in its
    layout (same architecture, so the same speed), and which of the two it is."""
    from ganzoo.metrics.inception import default_weights_path

    path = default_weights_path()
    if path.is_file():
        return path, "the real weights"
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.inception_weights import write_random_inception_weights

    return write_random_inception_weights(tmp / "inception.pth"), "random weights in the real layout (same speed)"


def extractor_kind(cfg: Any) -> str:
    """``inception`` or ``classifier``: the kind of FID extractor a composed config evaluates with."""
    return "inception" if "Inception" in str(cfg.metrics.evaluation.extractor._target_) else "classifier"


def feature_extractor(cfg: Any, device: torch.device, tmp: Path) -> tuple[str, torch.nn.Module, str]:
    """The config's FID feature extractor, ready to run (its kind, the module, which weights): untrained
    classifier, or Inception with some weights."""
    from ganzoo.metrics import ClassifierFeatures, InceptionFeatures

    target = str(cfg.metrics.evaluation.extractor._target_)
    if target.endswith("ClassifierFeatures"):
        from ganzoo.metrics.classifier import SmallClassifier

        settings = {k: v for k, v in cfg.metrics.evaluation.extractor.items() if k not in ("_target_", "name")}
        extractor = ClassifierFeatures(str(cfg.metrics.evaluation.extractor.name), **settings)
        recipe = extractor.recipe
        net = SmallClassifier(int(cfg.data.channels), 10, recipe.width, recipe.num_features)
        extractor.classifier = net.requires_grad_(False).eval()
        extractor.num_logits = 10
        return "classifier", extractor.to(device), "untrained weights (same speed)"
    if target.endswith("InceptionFeatures"):
        path, weights = random_inception_weights(tmp)
        extractor = InceptionFeatures(weights_path=str(path), download=False)
        extractor.prepare(None, tmp, device)
        return "inception", extractor, weights
    raise RuntimeError(f"no benchmark for the extractor {target}")


def measure_evaluation(job: EvalJob) -> dict[str, Any]:
    """One evaluation measurement, in its own process: features img/s alone and after generating."""
    from hydra.utils import instantiate

    from ganzoo.images import to_uint8

    device = torch.device(job.device)
    training_settings(device)
    cfg = compose(job.model, job.config, Variant())
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        kind, extractor, weights = feature_extractor(cfg, device, Path(tmp))
        batch = min(int(cfg.metrics.evaluation.batch_size), job.max_batch)
        c, s = int(cfg.data.channels), int(cfg.data.image_size)
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (batch, c, s, s), generator=gen, dtype=torch.uint8).to(device)
        features = time_batches(lambda: extractor(images), device, job.warmup, job.measured)

        torch.manual_seed(job.seed)
        model = instantiate(cfg.model, _convert_="all").to(device)
        if job.model in IMAGE_PAIR_MODELS:
            real = (images.float() / 127.5 - 1).to(device)
            direction = model.directions[0]  # CycleGAN: AtoB; pix2pix: its one direction (facades: BtoA)

            def generate_and_extract() -> Any:
                return extractor(to_uint8(model.translate(real, direction)))
        else:

            def generate_and_extract() -> Any:
                return extractor(to_uint8(model.generate(batch)))

        with torch.no_grad():
            both = time_batches(generate_and_extract, device, job.warmup, job.measured)
    return {
        "extractor": kind,
        "weights": weights,
        "batch_size": batch,
        "image_size": s,
        "channels": c,
        "features_images_per_s": batch / features,
        "generate_and_features_images_per_s": batch / both,
    }


def run_evaluations(
    models: Sequence[str], configs: Sequence[str], device: torch.device, quick: bool, timeout: float, started: float
) -> list[dict[str, Any]]:
    """The evaluation entries of each (model, config) but ``tiny``, each measured in its own process;
    ``started`` (a ``time.perf_counter()`` value) dates the progress lines."""
    evaluation = []
    for model in models:
        for config in [c for c in configs if c != "tiny"]:
            kind = extractor_kind(compose(model, config, Variant()))
            warmup, measured, max_batch = QUICK_EVAL_PLAN if quick else EVAL_PLANS[device.type][kind]
            job = EvalJob(model, config, str(device), warmup, measured, max_batch)
            result = run_subprocess(WORKER_MODULE, "--eval-worker", job.to_json(), timeout)
            date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            evaluation.append({"model": model, "config": config, "date": date, **result})
            what = result.get("error") or f"{fmt_rate(result['features_images_per_s'])} img/s features"
            log(f"[eval {time.perf_counter() - started:.0f}s] {model} {config}: {what}")
    return evaluation
