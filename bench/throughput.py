"""``python -m bench.throughput`` (``make bench``): training and evaluation throughput of ganzoo's models.

For each model (dcgan, cyclegan, biggan) at two configs, ``cpu`` (the CPU-sized experiment, e.g.
``experiment=dcgan_fmnist``) and ``real`` (the reference recipe, e.g. ``experiment=dcgan_cifar10``), it times

* **ganzoo**: the LightningModule the config builds, trained by a real ``lightning.Trainer`` (one device,
  a CSVLogger at the config's ``log_every_n_steps``; no checkpointing, progress bar or model summary);
* **plain**: the same networks (fresh instances built from the same config and seed) trained by the
  plain-PyTorch loop of :mod:`bench.plain_loops`, which the tests prove computes the same weights;

on the same in-memory synthetic batches (uniform noise in [-1, 1] of the config's shape and loader batch
size; uniform class labels), so neither side decodes images and the comparison is of the training-step
machinery. Throughput is real images per second, the loader batch (image pairs for CycleGAN) over the
wall time of an iteration, in steady state: the first ``warmup`` iterations are not timed. Each
measurement runs in its own Python process (so peak memory is per measurement and no allocator state is
shared), the sides alternate (ganzoo, plain, then plain, ganzoo, ...) and medians over ``--repeats`` are
reported; the ratio is ganzoo's median over plain's.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` during training; on a CPU the peak resident set
during training (Linux: VmHWM after resetting it through ``/proc/self/clear_refs`` at the start of
training; elsewhere ``ru_maxrss``, the process's lifetime peak).

Evaluation throughput: images per second through the FID feature extractor each config evaluates with
(the Fashion-MNIST classifier, untrained, or InceptionV3, with random weights when the real file is not in
torch.hub's cache: the speed is the same), alone and after generating (translating, for CycleGAN) and
quantising the images as the evaluation callback does.

With a GPU the real configs also run in variants: bf16-mixed precision, channels_last and torch.compile
(``model.channels_last`` / ``model.compile`` on the ganzoo side; the same conversions on the plain side).

Results: ``bench/results/<device>.json`` and ``.md`` (``--out`` to change; entries of models and configs
not run this time are kept from an existing file), and the table is printed.

Examples::

    python -m bench.throughput                                  # = make bench
    python -m bench.throughput --quick                          # smoke check: tiny step counts
    python -m bench.throughput --models dcgan --configs cpu --repeats 5
    python -m bench.throughput --configs real --variants fp32,bf16,bf16+channels_last+compile
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib.metadata
import inspect
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"

MODELS = ("dcgan", "cyclegan", "biggan")
CONFIGS = ("cpu", "real")
EXPERIMENTS = {
    ("dcgan", "cpu"): "dcgan_fmnist",
    ("dcgan", "real"): "dcgan_cifar10",
    ("cyclegan", "cpu"): "cyclegan_fmnist",
    ("cyclegan", "real"): "cyclegan_horse2zebra",
    ("biggan", "cpu"): "biggan_fmnist",
    ("biggan", "real"): "biggan_cifar10",
}

#: (warm-up iterations, measured iterations, repeats) per (model, config) and device kind. On a CPU the
#: real configs take seconds to tens of seconds per iteration, so they get few iterations, and BigGAN's real config
#: gets one repeat (Lightning's per-iteration cost is milliseconds there); the whole default run takes about
#: 10 minutes on 2 cores.
PLANS: dict[str, dict[tuple[str, str], tuple[int, int, int]]] = {
    "cpu": {
        ("dcgan", "cpu"): (5, 20, 3),
        ("cyclegan", "cpu"): (2, 4, 3),
        ("biggan", "cpu"): (5, 15, 3),
        ("dcgan", "real"): (2, 4, 3),
        ("cyclegan", "real"): (1, 2, 3),
        ("biggan", "real"): (1, 2, 1),
    },
    "cuda": {
        ("dcgan", "cpu"): (20, 200, 3),
        ("cyclegan", "cpu"): (20, 200, 3),
        ("biggan", "cpu"): (20, 200, 3),
        ("dcgan", "real"): (20, 100, 3),
        ("cyclegan", "real"): (20, 100, 3),
        ("biggan", "real"): (20, 100, 3),
    },
}
QUICK_PLAN = (1, 2, 1)

#: Variants run at the real configs on a GPU by default (the cpu configs and CPUs run ``fp32`` only).
GPU_VARIANTS = ("fp32", "bf16", "bf16+channels_last", "bf16+compile", "bf16+channels_last+compile")
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}

#: Model config keys that do not change the training iteration (sampling settings, and the speed switches
#: that the bench applies to the plain side itself); every other key must be an argument of the plain loop.
NOT_TRAINING_KEYS = {
    "_target_",
    "generator",
    "discriminator",
    "use_ema",
    "G_eval_mode",
    "standing_stats",
    "standing_batch_size",
    "channels_last",
    "compile",
}

#: Evaluation: (warm-up batches, measured batches, largest batch) per extractor and device kind.
EVAL_PLANS = {
    "cpu": {"classifier": (2, 10, 500), "inception": (1, 2, 10)},
    "cuda": {"classifier": (3, 20, 500), "inception": (3, 20, 500)},
}
QUICK_EVAL_PLAN = (1, 1, 8)

DATA_NOTE = (
    "Data: the same in-memory synthetic batches (uniform noise in [-1, 1] of the config's shape and loader batch "
    "size, uniform labels) feed both sides through the same DataLoader, so neither pays for image decoding: this "
    "compares the training-step machinery."
)


# ---------------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        return "+".join([self.precision] + ["channels_last"] * self.channels_last + ["compile"] * self.compile)

    @classmethod
    def parse(cls, text: str) -> Variant:
        parts = [p.strip() for p in text.split("+") if p.strip()]
        precision = parts.pop(0) if parts and parts[0] in PRECISIONS else "fp32"
        unknown = set(parts) - {"channels_last", "compile"}
        if unknown:
            raise SystemExit(
                f"unknown variant part(s) {sorted(unknown)} in {text!r}: use fp32|bf16[+channels_last][+compile]"
            )
        return cls(precision, "channels_last" in parts, "compile" in parts)


# ------------------------------------------------------------------------------------------------ configs
def compose(experiment: str, variant: Variant) -> Any:
    """The config ``python -m ganzoo.train experiment=<experiment>`` would run, with the variant's switches.

    As ``ganzoo.train.compose_config``, without importing Lightning (the plain side must not load it). A
    switch the model config lacks raises KeyError (the variant cannot run on this version of ganzoo).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ganzoo.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=[f"experiment={experiment}", "paths.output_dir=outputs/bench"])
    for key, on in (("channels_last", variant.channels_last), ("compile", variant.compile)):
        if on and key not in cfg.model:
            raise KeyError(f"model.{key} is not in the {experiment} config of this ganzoo version")
        if key in cfg.model:
            cfg.model[key] = on
    return cfg


def synthetic_batches(cfg: Any, model: str, count: int, seed: int = 1234) -> list[tuple[torch.Tensor, ...]]:
    """``count`` distinct loader batches of the config's shape: (A, B) for CycleGAN, (images, labels) otherwise."""
    gen = torch.Generator().manual_seed(seed)
    n, c, s = int(cfg.data.batch_size), int(cfg.data.channels), int(cfg.data.image_size)
    classes = max(int(cfg.data.get("num_classes") or 0), 1)
    batches = []
    for _ in range(count):
        images = torch.rand(n, c, s, s, generator=gen) * 2 - 1
        if model == "cyclegan":
            batches.append((images, torch.rand(n, c, s, s, generator=gen) * 2 - 1))
        else:
            batches.append((images, torch.randint(classes, (n,), generator=gen)))
    return batches


class SyntheticData(torch.utils.data.Dataset):
    """``length`` loader batches cycling through ``batches``: one epoch is the whole run."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.batches[index % len(self.batches)]


def loader(cfg: Any, model: str, steps: int, device: torch.device) -> torch.utils.data.DataLoader:
    batches = synthetic_batches(cfg, model, min(steps, 8))
    if device.type == "cuda":  # as a loader with pin_memory hands them over
        batches = [tuple(t.pin_memory() for t in batch) for batch in batches]
    return torch.utils.data.DataLoader(SyntheticData(batches, steps), batch_size=None, shuffle=False, num_workers=0)


# ------------------------------------------------------------------------------------------- measurement
@dataclass
class Job:
    model: str
    config: str
    side: str  # ganzoo | plain
    device: str
    variant: Variant
    warmup: int
    measured: int
    seed: int = 42
    progress_bar: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        data["variant"] = Variant(**data["variant"])
        return cls(**data)


def _proc_status_kb(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


class MemoryMeter:
    """Peak memory from :meth:`start` to :meth:`stop`: CUDA allocations, or the process's resident set."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: dict[str, Any] = {}

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.result["cuda_start_mb"] = torch.cuda.memory_allocated() / 2**20
        self.cpu_reset = False
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (the peak RSS) to the current RSS
            self.cpu_reset = True
        except OSError:
            pass
        rss = _proc_status_kb("VmRSS")
        self.result["rss_start_mb"] = rss / 1024 if rss is not None else None

    def stop(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            self.result["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        hwm = _proc_status_kb("VmHWM") if self.cpu_reset else None
        if hwm is not None:
            self.result["rss_peak_mb"] = hwm / 1024
            self.result["memory_method"] = "VmHWM since the start of training (/proc/self/clear_refs)"
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.result["rss_peak_mb"] = peak / (2**20 if sys.platform == "darwin" else 1024)
            self.result["memory_method"] = "ru_maxrss (the process's lifetime peak)"
        if self.result.get("rss_start_mb") is not None:
            self.result["rss_growth_mb"] = self.result["rss_peak_mb"] - self.result["rss_start_mb"]
        return self.result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _settings(device: torch.device) -> None:
    # What ganzoo.train sets for every run, on both sides.
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    torch.set_flush_denormal(True)


def _clock() -> tuple[float, float]:
    """Wall time and this process's CPU time (all threads)."""
    return time.perf_counter(), time.process_time()


def _images_per_second(
    clocks: list[tuple[float, float]], warmup: int, measured: int, per_iteration: int
) -> dict[str, Any]:
    """``clocks[i]``: :func:`_clock` at the end of iteration ``i``; timed: iterations warmup .. warmup+measured-1.

    ``images_per_s`` is the throughput over that window; ``images_per_s_median_iteration`` uses the median
    iteration instead, which ignores the spikes other processes cause on a shared machine; ``cpu_ms_per_iteration``
    is the CPU time the process spent per iteration (all its threads).
    """
    if len(clocks) != warmup + measured:
        raise RuntimeError(f"timed {len(clocks)} iterations, expected {warmup + measured}")
    if warmup < 1:
        raise RuntimeError("at least one warm-up iteration is needed to start the clock")
    wall = [c[0] for c in clocks[warmup - 1 :]]
    cpu = [c[1] for c in clocks[warmup - 1 :]]
    seconds = wall[-1] - wall[0]
    each = [b - a for a, b in zip(wall[:-1], wall[1:], strict=True)]
    return {
        "images_per_s": per_iteration * measured / seconds,
        "images_per_s_median_iteration": per_iteration / statistics.median(each),
        "ms_per_iteration": 1000 * seconds / measured,
        "cpu_ms_per_iteration": 1000 * (cpu[-1] - cpu[0]) / measured,
        "ms_per_iteration_each": [round(1000 * s, 3) for s in each],
    }


def run_ganzoo(job: Job, cfg: Any, device: torch.device) -> dict[str, Any]:
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import CSVLogger

    from ganzoo.cli import quiet_library_noise

    quiet_library_noise()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")

    meter = MemoryMeter(device)

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            meter.start()

        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            _sync(device)
            self.times.append(_clock())

    torch.manual_seed(job.seed)
    model = instantiate(cfg.model, _convert_="all")
    steps = job.warmup + job.measured
    timer = StepTimer()
    callbacks: list[Callback] = [timer]
    if job.progress_bar:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=PRECISIONS[job.variant.precision],
            max_steps=steps,
            max_epochs=1,
            logger=CSVLogger(tmp, name="bench"),
            log_every_n_steps=int(cfg.trainer.log_every_n_steps),
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_progress_bar=job.progress_bar,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=tmp,
        )
        trainer.fit(model, train_dataloaders=loader(cfg, job.model, steps, device))
        result = meter.stop()
    if trainer.global_step != steps:
        raise RuntimeError(f"ganzoo ran {trainer.global_step} iterations, expected {steps}")
    return {"times": timer.times, **result}


def _plain_arguments(cls: type, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The model config's training settings, as arguments of the plain loop ``cls``."""
    accepted = set(inspect.signature(cls).parameters)
    unknown = set(model_cfg) - accepted - NOT_TRAINING_KEYS
    if unknown:
        raise RuntimeError(
            f"model config keys {sorted(unknown)} are not arguments of {cls.__name__}: the plain loop would not do "
            "the same work; teach bench/plain_loops.py about them (or add them to NOT_TRAINING_KEYS)"
        )
    return {k: v for k, v in model_cfg.items() if k in accepted and k not in NOT_TRAINING_KEYS}


def build_plain(job: Job, cfg: Any, device: torch.device) -> tuple[Any, list[torch.nn.Module]]:
    """The plain loop on fresh networks built from the config with the job's seed, as the module builds them."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from bench import plain_loops

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    dtype = torch.bfloat16 if job.variant.precision == "bf16" else None
    torch.manual_seed(job.seed)
    if job.model == "cyclegan":
        make_g, make_d = instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)
        g_a2b, g_b2a, d_a, d_b = make_g(), make_g(), make_d(), make_d()
        trained = [g_a2b, g_b2a, d_a, d_b]
    else:
        trained = [instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)]
    memory_format = torch.channels_last if job.variant.channels_last else torch.preserve_format
    for net in trained:
        net.to(device=device, memory_format=memory_format).train()
    extra: dict[str, Any] = {}
    if job.model == "biggan" and model_cfg.get("ema"):
        # ganzoo's EMA copy is made before training and moved (and converted) with the module, never compiled.
        extra["G_ema"] = copy.deepcopy(trained[0]).requires_grad_(False)
    if job.variant.compile:
        for net in trained:
            net.compile()
    if job.model == "dcgan":
        loop = plain_loops.PlainDCGAN(*trained, **_plain_arguments(plain_loops.PlainDCGAN, model_cfg), autocast=dtype)
    elif job.model == "cyclegan":
        # Official names: netG_A = A -> B, netG_B = B -> A, netD_A judges B, netD_B judges A.
        args = _plain_arguments(plain_loops.PlainCycleGAN, model_cfg)
        loop = plain_loops.PlainCycleGAN(g_a2b, g_b2a, d_b, d_a, **args, autocast=dtype)
    else:
        args = _plain_arguments(plain_loops.PlainBigGAN, model_cfg)
        loop = plain_loops.PlainBigGAN(*trained, **args, **extra, autocast=dtype)
    return loop, trained


def run_plain(job: Job, cfg: Any, device: torch.device) -> dict[str, Any]:
    loop, _ = build_plain(job, cfg, device)
    steps = job.warmup + job.measured
    data = loader(cfg, job.model, steps, device)
    meter = MemoryMeter(device)
    times: list[tuple[float, float]] = []
    meter.start()
    for batch in data:
        batch = [t.to(device, non_blocking=True) for t in batch]
        if job.variant.channels_last:  # what ganzoo's on_after_batch_transfer does
            batch = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch]
        loop.step(batch)
        _sync(device)
        times.append(_clock())
    loop.end_epoch()
    result = meter.stop()
    if "lightning" in sys.modules:
        raise RuntimeError("the plain side imported Lightning")
    return {"times": times, **result}


def worker(job: Job) -> dict[str, Any]:
    device = torch.device(job.device)
    _settings(device)
    cfg = compose(EXPERIMENTS[job.model, job.config], job.variant)
    per_iteration = int(cfg.data.batch_size)
    run = run_ganzoo if job.side == "ganzoo" else run_plain
    result = run(job, cfg, device)
    times = result.pop("times")
    return {**_images_per_second(times, job.warmup, job.measured, per_iteration), **result}


# ------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvalJob:
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


def _extractor(cfg: Any, device: torch.device, tmp: Path) -> tuple[str, torch.nn.Module, str]:
    """The config's FID feature extractor, ready to run: untrained classifier, or Inception with some weights."""
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
        from ganzoo.metrics.inception import default_weights_path

        path = default_weights_path()
        weights = "the real weights"
        if not path.is_file():
            sys.path.insert(0, str(REPO))
            from tests.inception_weights import write_random_inception_weights

            path = write_random_inception_weights(tmp / "inception.pth")
            weights = "random weights in the real layout (same speed)"
        extractor = InceptionFeatures(weights_path=str(path), download=False)
        extractor.prepare(None, tmp, device)
        return "inception", extractor, weights
    raise RuntimeError(f"no benchmark for the extractor {target}")


def _time_batches(fn: Callable[[], Any], device: torch.device, warmup: int, measured: int) -> float:
    """Median seconds of ``fn`` over ``measured`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    seconds = []
    for _ in range(measured):
        start = time.perf_counter()
        fn()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def eval_worker(job: EvalJob) -> dict[str, Any]:
    from hydra.utils import instantiate

    from ganzoo.images import to_uint8

    device = torch.device(job.device)
    _settings(device)
    cfg = compose(EXPERIMENTS[job.model, job.config], Variant())
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        kind, extractor, weights = _extractor(cfg, device, Path(tmp))
        batch = min(int(cfg.metrics.evaluation.batch_size), job.max_batch)
        c, s = int(cfg.data.channels), int(cfg.data.image_size)
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (batch, c, s, s), generator=gen, dtype=torch.uint8).to(device)
        features = _time_batches(lambda: extractor(images), device, job.warmup, job.measured)

        torch.manual_seed(job.seed)
        model = instantiate(cfg.model, _convert_="all").to(device)
        if job.model == "cyclegan":
            real = (images.float() / 127.5 - 1).to(device)

            def generate_and_extract() -> Any:
                return extractor(to_uint8(model.translate(real, "AtoB")))
        else:

            def generate_and_extract() -> Any:
                return extractor(to_uint8(model.generate(batch)))

        with torch.no_grad():
            both = _time_batches(generate_and_extract, device, job.warmup, job.measured)
    return {
        "extractor": kind,
        "weights": weights,
        "batch_size": batch,
        "image_size": s,
        "channels": c,
        "features_images_per_s": batch / features,
        "generate_and_features_images_per_s": batch / both,
    }


# -------------------------------------------------------------------------------------------- the driver
def _subprocess(flag: str, payload: str, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.throughput", flag, payload, "--result", str(out)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s (--timeout)"}
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"error": f"exit status {proc.returncode}: " + " | ".join(tail)}
        return json.loads(out.read_text())


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        info["lightning"] = importlib.metadata.version("lightning")
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        info["cpu"] = match.group(1).strip() if match else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


@dataclass
class Plan:
    model: str
    config: str
    variant: Variant
    warmup: int
    measured: int
    repeats: int
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"ganzoo": [], "plain": []})


def _summary(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(plan: Plan, per_iteration: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model": plan.model,
        "config": plan.config,
        "experiment": EXPERIMENTS[plan.model, plan.config],
        "variant": plan.variant.name,
        "images_per_iteration": per_iteration,
        "warmup": plan.warmup,
        "measured": plan.measured,
        "repeats": plan.repeats,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    for side, runs in plan.runs.items():
        good = [r for r in runs if "error" not in r]
        entry[side] = {
            "images_per_s_median": _summary(good, "images_per_s"),
            "images_per_s_median_iteration": _summary(good, "images_per_s_median_iteration"),
            "ms_per_iteration_median": _summary(good, "ms_per_iteration"),
            "cpu_ms_per_iteration_median": _summary(good, "cpu_ms_per_iteration"),
            "images_per_s": [round(r["images_per_s"], 3) for r in good],
            "peak_mb": max((r.get("cuda_peak_mb") or r.get("rss_peak_mb") or 0 for r in good), default=None),
            "growth_mb": max((r.get("rss_growth_mb") or 0 for r in good), default=None),
            "runs": runs,
        }
    g, p = entry["ganzoo"]["images_per_s_median"], entry["plain"]["images_per_s_median"]
    entry["ratio"] = g / p if g and p else None
    g, p = entry["ganzoo"]["images_per_s_median_iteration"], entry["plain"]["images_per_s_median_iteration"]
    entry["ratio_median_iteration"] = g / p if g and p else None
    pairs = zip(entry["ganzoo"]["images_per_s"], entry["plain"]["images_per_s"], strict=False)
    entry["ratio_per_repeat"] = [round(a / b, 3) for a, b in pairs]
    return entry


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _rate(x: float | None) -> str:
    """A throughput with 3-4 significant digits: 1,234.5, 12.35, 0.0412."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.1f}"
    return f"{x:.3g}" if x < 1 else f"{x:.2f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    cuda = m["device"].startswith("cuda")
    where = m.get("gpu") or f"{m.get('cpu', 'CPU')}, {m['cpu_count']} cores ({m['torch_threads']} torch threads)"
    lines = [
        f"### Throughput: ganzoo vs a plain PyTorch loop ({where})",
        "",
        f"torch {m['torch']}, lightning {m.get('lightning', '?')}, Python {m['python']}; {m['date']}; "
        f"load average before/after: {report.get('load_average_before')} / {report.get('load_average_after')}.",
        "",
        "| model | config | variant | images/iteration | ganzoo img/s | plain img/s | ratio | per repeat | "
        "ratio of median iterations | "
        + ("peak GPU MB ganzoo / plain" if cuda else "peak RSS growth MB ganzoo / plain")
        + " | iterations (warm-up + timed) x repeats |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for e in report["training"]:
        g, p = e["ganzoo"], e["plain"]
        mem = "peak_mb" if cuda else "growth_mb"
        errors = [r["error"] for side in (g, p) for r in side["runs"] if "error" in r]
        ratio = _fmt(e["ratio"], 3) if not errors else "error"
        lines.append(
            f"| {e['model']} | {e['config']} ({e['experiment']}) | {e['variant']} | {e['images_per_iteration']} | "
            f"{_rate(g['images_per_s_median'])} | {_rate(p['images_per_s_median'])} | {ratio} | "
            f"{', '.join(f'{r:.2f}' for r in e['ratio_per_repeat'])} | {_fmt(e['ratio_median_iteration'], 3)} | "
            f"{_fmt(g[mem], 0)} / {_fmt(p[mem], 0)} | "
            f"({e['warmup']} + {e['measured']}) x {e['repeats']} |"
        )
    if report.get("evaluation"):
        lines += [
            "",
            "| model | config | extractor | images | features img/s | generate + features img/s |",
            "| --- | --- | --- | --- | ---: | ---: |",
        ]
        for e in report["evaluation"]:
            if "error" in e:
                lines.append(f"| {e['model']} | {e['config']} | error | | | |")
                continue
            lines.append(
                f"| {e['model']} | {e['config']} | {e['extractor']} | {e['batch_size']} x {e['channels']}x"
                f"{e['image_size']}px | {_rate(e['features_images_per_s'])} | "
                f"{_rate(e['generate_and_features_images_per_s'])} |"
            )
    lines += ["", *[f"- {note}" for note in report["notes"]]]
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: dcgan,cyclegan,biggan")
    parser.add_argument("--configs", default=None, help="comma-separated: cpu,real (default both; --quick: cpu)")
    parser.add_argument("--repeats", type=int, default=None, help="A/B runs per side (default: the plan's, 3)")
    parser.add_argument("--steps", default=None, help="WARMUP,MEASURED iterations for every config")
    parser.add_argument("--variants", default=None, help=f"real configs on a GPU (default {','.join(GPU_VARIANTS)})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/<device>.json)")
    parser.add_argument("--quick", action="store_true", help="smoke check: tiny step counts, cpu configs")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation throughput")
    parser.add_argument("--progress-bar", action="store_true", help="ganzoo side with RichProgressBar (make train's)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--eval-worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _choices(text: str, allowed: Iterable[str], what: str) -> list[str]:
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        raise SystemExit(f"--{what}: {bad or text!r} not among {', '.join(allowed)}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker or args.eval_worker:
        result = worker(Job.from_json(args.worker)) if args.worker else eval_worker(EvalJob.from_json(args.eval_worker))
        Path(args.result).write_text(json.dumps(result))
        return

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    kind = device.type
    models = _choices(args.models, MODELS, "models")
    configs = _choices(args.configs or ("cpu" if args.quick else ",".join(CONFIGS)), CONFIGS, "configs")
    notes = [DATA_NOTE]
    if kind == "cuda":
        variants_real = [Variant.parse(v) for v in (args.variants or ",".join(GPU_VARIANTS)).split(",")]
    else:
        variants_real = [Variant.parse(v) for v in args.variants.split(",")] if args.variants else [Variant()]
        notes.append(
            "No GPU: the bf16-mixed / channels_last / torch.compile variants (GPU only by default) were not run."
        )
    if args.quick:
        notes.append("--quick: smoke-check step counts; the numbers mean nothing.")
    if args.progress_bar:
        notes.append("--progress-bar: the ganzoo side ran with Lightning's RichProgressBar, as `make train` does.")
    steps = tuple(int(x) for x in args.steps.split(",")) if args.steps else None

    plans: list[Plan] = []
    for model in models:
        for config in configs:
            warmup, measured, repeats = QUICK_PLAN if args.quick else PLANS[kind][model, config]
            if steps:
                warmup, measured = steps
            if args.repeats:
                repeats = args.repeats
            for variant in variants_real if config == "real" else [Variant()]:
                plans.append(Plan(model, config, variant, warmup, measured, repeats))

    info = machine_info(device)
    report: dict[str, Any] = {"machine": info, "load_average_before": _load_average(), "notes": notes}
    total = sum(2 * p.repeats for p in plans)
    done = 0
    started = time.perf_counter()
    training = []
    for plan in plans:
        cfg = compose(EXPERIMENTS[plan.model, plan.config], Variant())
        per_iteration = int(cfg.data.batch_size)
        try:
            compose(EXPERIMENTS[plan.model, plan.config], plan.variant)
        except KeyError as e:
            notes.append(f"{plan.model} {plan.config} {plan.variant.name}: skipped, {e.args[0]}")
            continue
        for repeat in range(plan.repeats):
            sides = ("ganzoo", "plain") if repeat % 2 == 0 else ("plain", "ganzoo")
            for side in sides:
                job = Job(plan.model, plan.config, side, str(device), plan.variant, plan.warmup, plan.measured)
                job.progress_bar = args.progress_bar and side == "ganzoo"
                load = _load_average()
                result = _subprocess("--worker", job.to_json(), args.timeout)
                result["load_average"] = [load, _load_average()]
                plan.runs[side].append(result)
                done += 1
                what = "error: " + result["error"] if "error" in result else f"{_rate(result['images_per_s'])} img/s"
                _log(
                    f"[{done}/{total} {time.perf_counter() - started:.0f}s] {plan.model} {plan.config} "
                    f"{plan.variant.name} {side} #{repeat + 1}: {what}"
                )
        entry = summarise(plan, per_iteration)
        training.append(entry)
        _log(f"    {plan.model} {plan.config} {plan.variant.name}: ratio {_fmt(entry['ratio'], 3)}")
    report["training"] = training

    evaluation = []
    if not args.no_eval:
        for model in models:
            for config in configs:
                cfg = compose(EXPERIMENTS[model, config], Variant())
                kind_name = (
                    "inception" if "Inception" in str(cfg.metrics.evaluation.extractor._target_) else "classifier"
                )
                warmup, measured, max_batch = QUICK_EVAL_PLAN if args.quick else EVAL_PLANS[kind][kind_name]
                job = EvalJob(model, config, str(device), warmup, measured, max_batch)
                result = _subprocess("--eval-worker", job.to_json(), args.timeout)
                date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
                evaluation.append({"model": model, "config": config, "date": date, **result})
                what = result.get("error") or f"{_rate(result['features_images_per_s'])} img/s features"
                _log(f"[eval {time.perf_counter() - started:.0f}s] {model} {config}: {what}")
    report["evaluation"] = evaluation
    report["load_average_after"] = _load_average()
    notes += [
        "images/s: real images per iteration (the loader batch; CycleGAN: image pairs) / seconds per iteration, "
        "timed from the end of the last warm-up iteration to the end of the last one; median over the repeats. "
        "ratio = ganzoo median / plain median (>= 0.95 is the target). 'ratio of median iterations' compares the "
        "median iteration times instead, which ignores the spikes other processes cause on a shared machine.",
        "Each measurement runs in its own process; the sides alternate (ganzoo first in odd repeats, plain first "
        "in even ones).",
        "Memory: " + ("torch.cuda.max_memory_allocated during training." if kind == "cuda" else
                      "growth of the resident set from the start of training to its peak (VmHWM; ru_maxrss where "
                      "/proc is missing). The ganzoo process also holds Lightning, loaded before training."),
        "Evaluation: the config's FID extractor on uint8 batches, alone and after generating (CycleGAN: "
        "translating) and quantising the images; one process, median batch time.",
    ]  # fmt: skip
    if kind == "cpu":
        notes.append(
            "CPU timings on a shared machine are noisy (see the load average and the per-repeat ratios); the real "
            "configs take seconds per iteration on a CPU, so they run few iterations and BigGAN's real config one repeat."
        )

    out = Path(args.out) if args.out else RESULTS_DIR / f"{_device_slug(info)}{'-quick' if args.quick else ''}.json"
    report = _merge_previous(out, report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    out.with_suffix(".md").write_text(table)
    print(table)
    _log(f"wrote {out} and {out.with_suffix('.md')} ({time.perf_counter() - started:.0f}s)")


def _device_slug(info: dict[str, Any]) -> str:
    if "gpu" not in info:
        return "cpu"
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", info["gpu"].lower()).strip("-")


def _merge_previous(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Keep the entries of an earlier run at ``path`` that this run did not measure again."""
    if not path.is_file():
        return report
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return report

    def key(e: dict[str, Any]) -> tuple[str, ...]:
        return (e["model"], e["config"], e.get("variant", ""))

    for section in ("training", "evaluation"):
        new = {key(e) for e in report[section]}
        kept = [e for e in previous.get(section, []) if key(e) not in new]
        if kept:
            order = {(m, c): i for i, (m, c) in enumerate(EXPERIMENTS)}
            report[section] = sorted(kept + report[section], key=lambda e: (order[e["model"], e["config"]], key(e)))
            if section == "training":
                report["notes"].append(
                    f"Entries dated before {report['machine']['date']} are kept from an earlier run "
                    "(see each entry's date in the JSON)."
                )
    return report


if __name__ == "__main__":
    main()
