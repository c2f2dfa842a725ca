"""``python -m bench.throughput`` (``make bench``): training and evaluation throughput of ganzoo's models.

For each model (dcgan, cyclegan, biggan) at three configs, ``cpu`` (the CPU-sized experiment, e.g.
``experiment=dcgan_fmnist``), ``real`` (the reference recipe, e.g. ``experiment=dcgan_cifar10``) and ``tiny``
(the CPU-sized experiment with networks so narrow that the arithmetic is negligible: the framework's own
cost per iteration, see :mod:`bench.overhead`), it times three sides:

* **full**: what ``python -m ganzoo.train experiment=<experiment>`` runs. The experiment is composed with
  ``ganzoo.train.compose_config`` and trained by ``ganzoo.train.train`` itself, with the whole default
  callbacks group (progress bar, non-finite guard, preemption and failure checkpoints, step checkpoints at
  their intervals and ``last.ckpt``, sample sheets at their intervals, model summary, metrics log) and the
  CSV logger, writing into a temporary run directory. Only two things differ: the data is the bench's
  in-memory synthetic batches (:class:`bench.synthetic.SyntheticDataModule`, with the config's image size,
  channels, classes and batch size), and the metrics group is removed (``~metrics``): FID evaluation steps
  are not training iterations (their speed is measured apart, below). A timing callback is appended;
* **bare**: the same LightningModule trained by a bare ``lightning.Trainer`` (one device, a CSVLogger at the
  config's ``log_every_n_steps``; no checkpointing, progress bar, model summary or other callbacks): the
  module and Lightning's loop alone;
* **plain**: the same networks (fresh instances built from the same config and seed) trained by the
  plain-PyTorch loop of :mod:`bench.plain_loops`, which the tests prove computes the same weights;

on the same in-memory synthetic batches (uniform noise in [-1, 1] of the config's shape and loader batch
size; uniform class labels), so no side decodes images and the comparison is of the training-step machinery.
Throughput is real images per second, the loader batch (image pairs for CycleGAN) over the wall time of an
iteration, in steady state: the first ``warmup`` iterations are not timed. The clock reads at the start of
each iteration (after the batch reached the device), so an iteration's time holds its step, every callback
after it (checkpoints and sheets at their steps included) and the next batch's fetch. On a GPU the device is
synchronised once at each end of the timed window, never per iteration (a sync per step would stall the
host's run-ahead that real training gets); on a CPU, where syncs are free, each iteration's time is kept too.
Each measurement runs in its own Python process (so peak memory is per measurement and no allocator state
is shared), the sides alternate (full, bare, plain; then bare, plain, full; ...) and medians over
``--repeats`` are reported; the ratios are each ganzoo side's median over plain's.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` during training; on a CPU the peak resident set
during training (Linux: VmHWM after resetting it through ``/proc/self/clear_refs`` at the start of
training; elsewhere ``ru_maxrss``, the process's lifetime peak).

Evaluation throughput: images per second through the FID feature extractor each config evaluates with
(the Fashion-MNIST classifier, untrained, or InceptionV3, with random weights when the real file is not in
torch.hub's cache: the speed is the same), alone and after generating (translating, for CycleGAN) and
quantising the images as the evaluation callback does.

With a GPU the real configs also run in variants: bf16-mixed precision, channels_last and torch.compile
(``model.channels_last`` / ``model.compile`` on the ganzoo side; the same conversions on the plain side);
``compile=<mode>`` passes a torch.compile mode (e.g. ``bf16+compile=reduce-overhead``: CUDA graphs).

Results: ``bench/results/<device>.json`` and ``.md`` (``--out`` to change; entries of models and configs
not run this time are kept from an existing file), and the tables are printed.

Examples::

    python -m bench.throughput                                  # = make bench
    python -m bench.throughput --quick                          # smoke check: tiny step counts
    python -m bench.throughput --models dcgan --configs cpu --repeats 5
    python -m bench.throughput --configs tiny --profile dcgan   # = python -m bench.overhead --profile dcgan
    python -m bench.throughput --configs real --variants fp32,bf16,bf16+channels_last+compile
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"

MODELS = ("dcgan", "cyclegan", "biggan")
CONFIGS = ("cpu", "real", "tiny")
#: full: python -m ganzoo.train's stack; bare: the module in a bare Trainer; plain: bench.plain_loops.
SIDES = ("full", "bare", "plain")
EXPERIMENTS = {
    ("dcgan", "cpu"): "dcgan_fmnist",
    ("dcgan", "real"): "dcgan_cifar10",
    ("dcgan", "tiny"): "dcgan_fmnist",
    ("cyclegan", "cpu"): "cyclegan_fmnist",
    ("cyclegan", "real"): "cyclegan_horse2zebra",
    ("cyclegan", "tiny"): "cyclegan_fmnist",
    ("biggan", "cpu"): "biggan_fmnist",
    ("biggan", "real"): "biggan_cifar10",
    ("biggan", "tiny"): "biggan_fmnist",
}
#: Overrides on top of the experiment. ``tiny``: channel widths so small that the arithmetic is negligible next
#: to the per-iteration cost of the framework (same layer counts and loop as the experiment), small batches.
OVERRIDES: dict[tuple[str, str], tuple[str, ...]] = {
    ("dcgan", "tiny"): ("model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=4"),
    ("cyclegan", "tiny"): ("model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=2"),
    # The loader batch is model.batch_size x num_D_steps (2 in biggan_fmnist): 4 images.
    ("biggan", "tiny"): ("model.generator.ch=4", "model.discriminator.ch=4", "model.batch_size=2"),
}
#: torch CPU threads per config (None: torch's default): the tiny networks measure host time on one thread.
THREADS = {"tiny": 1}

#: (warm-up iterations, measured iterations, repeats) per (model, config) and device kind. On a CPU the
#: real configs take seconds to tens of seconds per iteration, so they get few iterations, and BigGAN's real config
#: gets one repeat (Lightning's per-iteration cost is milliseconds there).
PLANS: dict[str, dict[tuple[str, str], tuple[int, int, int]]] = {
    "cpu": {
        ("dcgan", "cpu"): (5, 20, 3),
        ("cyclegan", "cpu"): (2, 4, 3),
        ("biggan", "cpu"): (5, 15, 3),
        ("dcgan", "real"): (2, 4, 3),
        ("cyclegan", "real"): (1, 2, 3),
        ("biggan", "real"): (1, 2, 1),
        **{(model, "tiny"): (50, 500, 3) for model in MODELS},
    },
    "cuda": {
        ("dcgan", "cpu"): (20, 200, 3),
        ("cyclegan", "cpu"): (20, 200, 3),
        ("biggan", "cpu"): (20, 200, 3),
        ("dcgan", "real"): (20, 100, 3),
        ("cyclegan", "real"): (20, 100, 3),
        ("biggan", "real"): (20, 100, 3),
        **{(model, "tiny"): (50, 500, 3) for model in MODELS},
    },
}
QUICK_PLAN = (1, 2, 1)

#: Variants run at the real configs on a GPU by default (the other configs and CPUs run ``fp32`` only).
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
    "size, uniform labels) feed every side, so none pays for image decoding: this compares the training-step "
    "machinery."
)
FULL_NOTE = (
    "full = `python -m ganzoo.train experiment=<experiment>` itself (compose_config + train(cfg)): the whole default "
    "callbacks group (progress bar, non-finite guard, preemption/failure checkpoints, step checkpoints and "
    "last.ckpt at their intervals, sample sheets at their intervals, model summary, metrics log) and the CSV "
    "logger, in a temporary run directory; only the data (synthetic batches) differs, and the metrics group is "
    "removed (~metrics) because FID evaluation steps are not training iterations. The progress bar writes to a "
    "pipe (its final state only, as in a batch job). bare = the same LightningModule in a bare lightning.Trainer "
    "(CSV logger only: no checkpoints, progress bar, summary or other callbacks)."
)


# ---------------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """A speed setting: precision, channels_last, and a torch.compile mode ("" off, "default", "reduce-overhead",
    "max-autotune", ...)."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: str = ""

    @property
    def name(self) -> str:
        compiled = [] if not self.compile else ["compile" if self.compile == "default" else f"compile={self.compile}"]
        return "+".join([self.precision] + ["channels_last"] * self.channels_last + compiled)

    @property
    def compile_setting(self) -> bool | str:
        """``model.compile``'s value: false, true (the default mode) or the mode's name."""
        return False if not self.compile else True if self.compile == "default" else self.compile

    @classmethod
    def parse(cls, text: str) -> Variant:
        parts = [p.strip() for p in text.split("+") if p.strip()]
        precision = parts.pop(0) if parts and parts[0] in PRECISIONS else "fp32"
        compile_mode = ""
        for part in [p for p in parts if p == "compile" or p.startswith("compile=")]:
            compile_mode = part.partition("=")[2] or "default"
            parts.remove(part)
        unknown = set(parts) - {"channels_last"}
        if unknown or compile_mode.strip() != compile_mode:
            raise SystemExit(
                f"error: unknown variant part(s) {sorted(unknown)} in {text!r}: "
                "use fp32|bf16[+channels_last][+compile[=<mode>]]"
            )
        return cls(precision, "channels_last" in parts, compile_mode)


# ------------------------------------------------------------------------------------------------ configs
def experiment_overrides(model: str, config: str) -> list[str]:
    """The command-line overrides of a (model, config): ``experiment=...`` and the config's own overrides."""
    return [f"experiment={EXPERIMENTS[model, config]}", *OVERRIDES.get((model, config), ())]


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
    (:func:`data_spec`) and the logging interval."""
    from omegaconf import OmegaConf

    cfg = compose(model, config, variant)
    return {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": data_spec(cfg, model),
        "log_every_n_steps": int(cfg.trainer.log_every_n_steps),
    }


def data_spec(cfg: Any, model: str) -> dict[str, Any]:
    """What the synthetic batches take from a config: shape, classes and the loader batch (global) size."""
    return {
        "image_size": int(cfg.data.image_size),
        "channels": int(cfg.data.channels),
        "num_classes": int(cfg.data.get("num_classes") or 0),
        "batch_size": int(cfg.data.batch_size),
        "pairs": model == "cyclegan",
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
    dataset, the metrics group removed (``~metrics``: evaluation steps are not training iterations) and the
    ``callbacks`` entries appended to the default callbacks group. Everything else is the experiment's."""
    from omegaconf import OmegaConf, open_dict

    from ganzoo.train import compose_config

    cfg = compose_config([*experiment_overrides(model, config), *overrides], output_dir=output_dir)
    apply_variant(cfg, variant)
    spec = data_spec(cfg, model)
    with open_dict(cfg):
        cfg.pop("metrics", None)
        cfg.seed = seed
        cfg.data = OmegaConf.create(
            {
                "_target_": "bench.synthetic.SyntheticDataModule",
                "name": str(cfg.data.get("name") or "synthetic"),
                **spec,
                "steps": steps,
                "pin_memory": device.type == "cuda",
            }
        )
        cfg.trainer.max_steps = steps
        cfg.trainer.max_epochs = 1
        cfg.trainer.precision = PRECISIONS[variant.precision]
        cfg.trainer.accelerator = "gpu" if device.type == "cuda" else "cpu"
        for key, entry in (callbacks or {}).items():
            cfg.callbacks[key] = entry
    return cfg


# ----------------------------------------------------------------------------------------- synthetic data
def synthetic_batches(
    batch_size: int, channels: int, image_size: int, num_classes: int, pairs: bool, count: int, seed: int = 1234
) -> list[tuple[torch.Tensor, ...]]:
    """``count`` distinct loader batches: (A, B) image pairs with ``pairs`` (CycleGAN), (images, labels) otherwise."""
    gen = torch.Generator().manual_seed(seed)
    n, c, s = batch_size, channels, image_size
    batches = []
    for _ in range(count):
        images = torch.rand(n, c, s, s, generator=gen) * 2 - 1
        if pairs:
            batches.append((images, torch.rand(n, c, s, s, generator=gen) * 2 - 1))
        else:
            batches.append((images, torch.randint(max(num_classes, 1), (n,), generator=gen)))
    return batches


class SyntheticData(torch.utils.data.Dataset):
    """``length`` loader batches cycling through ``batches``: one epoch is the whole run."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.batches[index % len(self.batches)]


def synthetic_loader(batches: list[tuple[torch.Tensor, ...]], steps: int, pin: bool) -> torch.utils.data.DataLoader:
    """A loader of ``steps`` ready batches; ``pin``: pinned once, as a loader with pin_memory hands them over."""
    if pin:
        batches = [tuple(t.pin_memory() for t in batch) for batch in batches]
    return torch.utils.data.DataLoader(SyntheticData(batches, steps), batch_size=None, shuffle=False, num_workers=0)


def loader(spec: dict[str, Any], steps: int, device: torch.device) -> torch.utils.data.DataLoader:
    """The synthetic loader of a :func:`data_spec`: the batches :class:`bench.synthetic.SyntheticDataModule` serves."""
    batches = synthetic_batches(**spec, count=min(steps, 8))
    return synthetic_loader(batches, steps, pin=device.type == "cuda")


# ------------------------------------------------------------------------------------------- measurement
@dataclass
class Job:
    model: str
    config: str
    side: str  # full | bare | plain
    device: str
    variant: Variant
    warmup: int
    measured: int
    seed: int = 42
    threads: int | None = None
    profile: bool = False
    #: The resolved config values the bare and plain sides train with (:func:`job_values`), composed by the
    #: driver: composing needs ganzoo's config resolvers, whose module loads Lightning.
    values: dict[str, Any] = field(default_factory=dict)

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
        self.cpu_reset = False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.result["cuda_start_mb"] = torch.cuda.memory_allocated() / 2**20
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
        torch.cuda.synchronize(device)


def _settings(device: torch.device) -> None:
    # What ganzoo.train sets for every run, on every side.
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    torch.set_flush_denormal(True)


def _clock() -> tuple[float, float]:
    """Wall time and this process's CPU time (all threads)."""
    return time.perf_counter(), time.process_time()


class Clock:
    """Wall and CPU time of iterations ``warmup`` .. ``warmup + measured - 1``, read at the start of iterations.

    :meth:`tick` is called at the start of every iteration (0, 1, ...), the batch already on the device. The
    device is synchronised only at the start of iteration ``warmup`` and of iteration ``warmup + measured``
    (the end of the timed window), so the timed iterations queue work as freely as in real training. With
    ``keep_each`` (CPUs, where syncs are free) every iteration in the window is stamped, otherwise only its
    ends. ``meter`` is stopped at the end of the window; ``profile`` runs cProfile over the window.
    """

    def __init__(
        self,
        warmup: int,
        measured: int,
        device: torch.device,
        keep_each: bool = True,
        meter: MemoryMeter | None = None,
        profile: bool = False,
    ) -> None:
        if measured < 1 or warmup < 0:
            raise ValueError(f"warm-up {warmup} >= 0 and measured {measured} >= 1 iterations are needed")
        self.warmup, self.measured, self.device, self.keep_each = warmup, measured, device, keep_each
        self.meter = meter
        self.memory: dict[str, Any] = {}
        #: (iteration, wall seconds, CPU seconds) at the start of iterations of the window.
        self.stamps: list[tuple[int, float, float]] = []
        self.profiler = cProfile.Profile() if profile else None
        self.finished = False

    def tick(self, iteration: int) -> None:
        start, end = self.warmup, self.warmup + self.measured
        if iteration < start or iteration > end:
            return
        if iteration in (start, end):
            _sync(self.device)
        if iteration == end and self.profiler is not None:
            self.profiler.disable()
        if self.keep_each or iteration in (start, end):
            self.stamps.append((iteration, *_clock()))
        if iteration == end:
            self.finished = True
            if self.meter is not None:
                self.memory = self.meter.stop()
        elif iteration == start and self.profiler is not None:
            self.profiler.enable()


def window_statistics(stamps: list[tuple[int, float, float]], measured: int, per_iteration: int) -> dict[str, Any]:
    """Throughput over a :class:`Clock`'s window of ``measured`` iterations of ``per_iteration`` images.

    ``images_per_s`` and ``ms_per_iteration`` are over the whole window; ``cpu_ms_per_iteration`` is the CPU time
    the process spent per iteration (all its threads). With every iteration stamped, also the median iteration
    (which ignores the spikes other processes cause on a shared machine) and the iterations' times (each one
    for short windows, percentiles for long ones).
    """
    if len(stamps) < 2 or stamps[-1][0] - stamps[0][0] != measured:
        timed = stamps[-1][0] - stamps[0][0] if len(stamps) > 1 else 0
        raise RuntimeError(f"timed {timed} iterations, expected {measured}")
    seconds = stamps[-1][1] - stamps[0][1]
    result: dict[str, Any] = {
        "images_per_s": per_iteration * measured / seconds,
        "ms_per_iteration": 1000 * seconds / measured,
        "cpu_ms_per_iteration": 1000 * (stamps[-1][2] - stamps[0][2]) / measured,
    }
    if len(stamps) == measured + 1:
        each = [1000 * (b[1] - a[1]) for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
        median = statistics.median(each)
        result["images_per_s_median_iteration"] = per_iteration * 1000 / median
        result["ms_per_iteration_median_iteration"] = median
        if measured <= 100:
            result["ms_per_iteration_each"] = [round(ms, 3) for ms in each]
        else:
            cuts = statistics.quantiles(each, n=20)
            result["ms_per_iteration_percentiles"] = {
                "p5": round(cuts[0], 3), "p50": round(median, 3), "p95": round(cuts[-1], 3), "max": round(max(each), 3)
            }  # fmt: skip
    return result


def _quiet_lightning() -> None:
    from ganzoo.cli import quiet_library_noise

    quiet_library_noise()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def _clock_entry(job: Job, key: str = "clock") -> dict[str, Any]:
    """A callbacks entry that appends the bench's :class:`bench.synthetic.IterationClock` (kept under ``key``)."""
    clock = {
        "_target_": "bench.synthetic.IterationClock",
        "warmup": job.warmup,
        "measured": job.measured,
        "profile": job.profile,
        "threads": job.threads,
    }
    return {"_target_": "bench.synthetic.remember", "key": key, "callback": clock}


def run_full(job: Job, device: torch.device) -> dict[str, Any]:
    """``ganzoo.train.train(cfg)`` on the full stack (:func:`full_stack_config`), timed by the appended clock."""
    from bench.synthetic import REMEMBERED
    from ganzoo.train import train

    _quiet_lightning()
    steps = job.warmup + job.measured + 1
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        cfg = full_stack_config(
            job.model, job.config, job.variant, device, steps, tmp, {"bench_clock": _clock_entry(job)}, seed=job.seed
        )
        train(cfg)
    timer = REMEMBERED["clock"]
    if timer.clock is None or not timer.clock.finished:
        raise RuntimeError(f"the run ended before the timed window did ({timer._batches} of {steps} iterations)")
    result = {"stamps": timer.clock.stamps, **timer.clock.memory, "info": timer.info, "threads": timer.info["threads"]}
    if timer.clock.profiler is not None:
        from bench.overhead import profile_groups

        result["profile"] = profile_groups(timer.clock.profiler, timer.callback_code, job.measured)
    return result


def run_bare(job: Job, device: torch.device) -> dict[str, Any]:
    """The LightningModule in a bare ``lightning.Trainer``: a CSV logger and the clock, nothing else."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import CSVLogger

    from bench.synthetic import IterationClock

    _quiet_lightning()
    torch.manual_seed(job.seed)
    model = instantiate(job.values["model"], _convert_="all")
    steps = job.warmup + job.measured + 1
    timer = IterationClock(job.warmup, job.measured, profile=job.profile, threads=job.threads)
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=PRECISIONS[job.variant.precision],
            max_steps=steps,
            max_epochs=1,
            logger=CSVLogger(tmp, name="bench"),
            log_every_n_steps=job.values["log_every_n_steps"],
            callbacks=[timer],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=tmp,
        )
        trainer.fit(model, train_dataloaders=loader(job.values["data"], steps, device))
    if timer.clock is None or not timer.clock.finished:
        raise RuntimeError(f"ganzoo ran {trainer.global_step} iterations, expected {steps}")
    return {"stamps": timer.clock.stamps, **timer.clock.memory, "threads": timer.info["threads"]}


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


def build_plain(job: Job, device: torch.device) -> tuple[Any, list[torch.nn.Module]]:
    """The plain loop on fresh networks built from the model config with the job's seed, as the module builds them."""
    from hydra.utils import instantiate

    from bench import plain_loops

    model_cfg = job.values["model"]
    dtype = torch.bfloat16 if job.variant.precision == "bf16" else None
    torch.manual_seed(job.seed)
    if job.model == "cyclegan":
        make_g, make_d = instantiate(model_cfg["generator"]), instantiate(model_cfg["discriminator"])
        g_a2b, g_b2a, d_a, d_b = make_g(), make_g(), make_d(), make_d()
        trained = [g_a2b, g_b2a, d_a, d_b]
    else:
        trained = [instantiate(model_cfg["generator"]), instantiate(model_cfg["discriminator"])]
    memory_format = torch.channels_last if job.variant.channels_last else torch.preserve_format
    for net in trained:
        net.to(device=device, memory_format=memory_format).train()
    extra: dict[str, Any] = {}
    if job.model == "biggan" and model_cfg.get("ema"):
        # ganzoo's EMA copy is made before training and moved (and converted) with the module, never compiled.
        extra["G_ema"] = copy.deepcopy(trained[0]).requires_grad_(False)
    if job.variant.compile:
        mode = {} if job.variant.compile == "default" else {"mode": job.variant.compile}
        for net in trained:
            net.compile(**mode)
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


def run_plain(job: Job, device: torch.device) -> dict[str, Any]:
    """The plain loop over the same synthetic batches, timed by the same :class:`Clock`."""
    loop, _ = build_plain(job, device)
    steps = job.warmup + job.measured + 1
    data = loader(job.values["data"], steps, device)
    meter = MemoryMeter(device)
    clock = Clock(job.warmup, job.measured, device, keep_each=device.type != "cuda", meter=meter, profile=job.profile)
    meter.start()
    for iteration, batch in enumerate(data):
        batch = [t.to(device, non_blocking=True) for t in batch]
        if job.variant.channels_last:  # what ganzoo's on_after_batch_transfer does
            batch = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch]
        clock.tick(iteration)
        if clock.finished:
            break
        loop.step(batch)
    loop.end_epoch()
    if "lightning" in sys.modules:
        raise RuntimeError("the plain side imported Lightning")
    if not clock.finished:
        raise RuntimeError(f"the loader ended before the timed window did ({steps} batches)")
    result: dict[str, Any] = {"stamps": clock.stamps, **clock.memory, "threads": torch.get_num_threads()}
    if clock.profiler is not None:
        from bench.overhead import profile_groups

        result["profile"] = profile_groups(clock.profiler, {}, job.measured)
    return result


def worker(job: Job) -> dict[str, Any]:
    """One measurement, in its own process: the job's side, then the window's statistics."""
    device = torch.device(job.device)
    if job.threads:
        torch.set_num_threads(job.threads)
    _settings(device)
    per_iteration = int(job.values["data"]["batch_size"])
    if job.side == "full":
        result = run_full(job, device)
    elif job.side == "bare":
        result = run_bare(job, device)
    else:
        result = run_plain(job, device)
    stamps = result.pop("stamps")
    return {**window_statistics(stamps, job.measured, per_iteration), **result}


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
        path, weights = random_inception_weights(tmp)
        extractor = InceptionFeatures(weights_path=str(path), download=False)
        extractor.prepare(None, tmp, device)
        return "inception", extractor, weights
    raise RuntimeError(f"no benchmark for the extractor {target}")


def time_batches(fn: Callable[[], Any], device: torch.device, warmup: int, measured: int) -> float:
    """Median seconds of ``fn`` over ``measured`` calls after ``warmup`` calls (the device synced after each)."""
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
    cfg = compose(job.model, job.config, Variant())
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        kind, extractor, weights = _extractor(cfg, device, Path(tmp))
        batch = min(int(cfg.metrics.evaluation.batch_size), job.max_batch)
        c, s = int(cfg.data.channels), int(cfg.data.image_size)
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (batch, c, s, s), generator=gen, dtype=torch.uint8).to(device)
        features = time_batches(lambda: extractor(images), device, job.warmup, job.measured)

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


# -------------------------------------------------------------------------------------------- the driver
def one_line(text: str, limit: int = 400) -> str:
    """The last informative line of an error output, for tables and JSON."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|error:)", line)]
    line = (errors or lines or ["(no output)"])[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_subprocess(
    module: str, flag: str, payload: str, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``python -m <module> <flag> <payload> --result <file>`` in the repository; its result, or ``{"error": ...}``
    (one line, and the output's tail under ``error_tail``)."""
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", module, flag, payload, "--result", str(out)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=max(timeout, 1),
                env={**os.environ, **(env or {})},
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s"}
        if proc.returncode != 0 or not out.is_file():
            output = (proc.stderr or "") + (proc.stdout or "")
            tail = output.strip().splitlines()[-15:]
            return {"error": f"exit status {proc.returncode}: {one_line(output)}", "error_tail": tail}
        return json.loads(out.read_text())


def commit() -> str:
    """The checkout's commit, marked when tracked files differ from it; 'unknown' outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=20)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit(),
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
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float] | None:
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
    threads: int | None = None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def make_plans(
    models: Iterable[str],
    configs: Iterable[str],
    kind: str,
    variants_real: Sequence[Variant] = (Variant(),),
    quick: bool = False,
    steps: tuple[int, int] | None = None,
    repeats: int | None = None,
) -> list[Plan]:
    """The measurements of each (model, config) with its step counts (:data:`PLANS`), real configs in each variant."""
    plans = []
    for model in models:
        for config in configs:
            warmup, measured, count = QUICK_PLAN if quick else PLANS[kind][model, config]
            if steps:
                warmup, measured = steps
            for variant in variants_real if config == "real" else [Variant()]:
                plans.append(Plan(model, config, variant, warmup, measured, repeats or count, THREADS.get(config)))
    return plans


def run_plans(
    plans: list[Plan],
    device: torch.device,
    sides: Sequence[str],
    timeout: float,
    notes: list[str],
    deadline: float | None = None,
    log_prefix: str = "",
) -> list[dict[str, Any]]:
    """Run every plan's repeats, each side in its own process, alternating the order of the sides; the summaries.

    With ``deadline`` (a ``time.monotonic()`` value), a measurement that cannot start at least 10 s before it is
    skipped (recorded as such), and each process may run until the deadline at most.
    """
    total = sum(len(sides) * p.repeats for p in plans)
    done = 0
    started = time.monotonic()
    entries = []
    for plan in plans:
        try:
            values = job_values(plan.model, plan.config, plan.variant)
        except KeyError as e:
            notes.append(f"{plan.model} {plan.config} {plan.variant.name}: skipped, {e.args[0]}")
            continue
        plan.runs = {side: [] for side in sides}
        for repeat in range(plan.repeats):
            shift = repeat % len(sides)
            for side in [*sides[shift:], *sides[:shift]]:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left < 10:
                    result: dict[str, Any] = {"error": "skipped: the time budget was spent", "skipped": True}
                else:
                    job = Job(plan.model, plan.config, side, str(device), plan.variant, plan.warmup, plan.measured)
                    job.threads, job.values = plan.threads, values
                    env = {"OMP_NUM_THREADS": str(plan.threads)} if plan.threads else None
                    load = load_average()
                    limit = timeout if left is None else min(timeout, left)
                    result = run_subprocess("bench.throughput", "--worker", job.to_json(), limit, env)
                    result["load_average"] = [load, load_average()]
                plan.runs[side].append(result)
                done += 1
                what = "error: " + result["error"] if "error" in result else f"{result['ms_per_iteration']:.2f} ms/it"
                _log(
                    f"{log_prefix}[{done}/{total} {time.monotonic() - started:.0f}s] {plan.model} {plan.config} "
                    f"{plan.variant.name} {side} #{repeat + 1}: {what}"
                )
        entry = summarise(plan, values["data"]["batch_size"])
        entries.append(entry)
        _log(f"{log_prefix}    {plan.model} {plan.config} {plan.variant.name}: full/plain {_fmt(entry['ratio'], 3)}")
    return entries


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def summarise(plan: Plan, per_iteration: int) -> dict[str, Any]:
    """Medians over the repeats of each side, the ratios to plain, and (per repeat) the ms differences."""
    entry: dict[str, Any] = {
        "model": plan.model,
        "config": plan.config,
        "experiment": EXPERIMENTS[plan.model, plan.config],
        "overrides": list(OVERRIDES.get((plan.model, plan.config), ())),
        "variant": plan.variant.name,
        "images_per_iteration": per_iteration,
        "warmup": plan.warmup,
        "measured": plan.measured,
        "repeats": plan.repeats,
        "threads": plan.threads,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    for side, runs in plan.runs.items():
        good = [r for r in runs if "error" not in r]
        entry[side] = {
            "images_per_s_median": _median(good, "images_per_s"),
            "images_per_s_median_iteration": _median(good, "images_per_s_median_iteration"),
            "ms_per_iteration_median": _median(good, "ms_per_iteration"),
            "cpu_ms_per_iteration_median": _median(good, "cpu_ms_per_iteration"),
            "images_per_s": [round(r["images_per_s"], 3) for r in good],
            "ms_per_iteration": [round(r["ms_per_iteration"], 4) for r in good],
            "threads": sorted({r["threads"] for r in good if r.get("threads")}),
            "peak_mb": max((r.get("cuda_peak_mb") or r.get("rss_peak_mb") or 0 for r in good), default=None),
            "growth_mb": max((r.get("rss_growth_mb") or 0 for r in good), default=None),
            "errors": [r["error"] for r in runs if "error" in r],
            "runs": runs,
        }
    plain = entry.get("plain", {})
    for side in ("full", "bare"):
        mine = entry.get(side)
        if not mine or not plain:
            continue
        suffix = "" if side == "full" else "_bare"
        entry[f"ratio{suffix}"] = _ratio(mine["images_per_s_median"], plain["images_per_s_median"])
        entry[f"ratio_median_iteration{suffix}"] = _ratio(
            mine["images_per_s_median_iteration"], plain["images_per_s_median_iteration"]
        )
        pairs = list(zip(mine["runs"], plain["runs"], strict=False))
        ok = [(a, b) for a, b in pairs if "error" not in a and "error" not in b]
        entry[f"ratio_per_repeat{suffix}"] = [round(a["images_per_s"] / b["images_per_s"], 3) for a, b in ok]
        entry[f"overhead_ms{suffix}"] = _difference(mine["ms_per_iteration_median"], plain["ms_per_iteration_median"])
        entry[f"overhead_cpu_ms{suffix}"] = _difference(
            mine["cpu_ms_per_iteration_median"], plain["cpu_ms_per_iteration_median"]
        )
        entry[f"overhead_ms_per_repeat{suffix}"] = [
            round(a["ms_per_iteration"] - b["ms_per_iteration"], 3) for a, b in ok
        ]
    entry.setdefault("ratio", None)
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


def config_label(entry: dict[str, Any]) -> str:
    """``cpu (dcgan_fmnist)``, or with the config's overrides for ``tiny``."""
    overrides = entry.get("overrides") or []
    extra = ", " + " ".join(o.split(".", 1)[-1] for o in overrides) if overrides else ""
    return f"{entry['config']} ({entry['experiment']}{extra})"


def _side_errors(entry: dict[str, Any]) -> list[str]:
    return [e for side in SIDES for e in entry.get(side, {}).get("errors", [])]


def training_markdown(entries: list[dict[str, Any]], cuda: bool) -> list[str]:
    """The throughput table: images/s of each side, ratios to plain, memory and step counts."""
    mem = "peak_mb" if cuda else "growth_mb"
    lines = [
        "| model | config | variant | images/iteration | full img/s | bare img/s | plain img/s | full / plain | "
        "bare / plain | full / plain per repeat | full / plain of median iterations | "
        + ("peak GPU MB" if cuda else "peak RSS growth MB")
        + " full / bare / plain | iterations (warm-up + timed) x repeats |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for e in entries:
        g, b, p = (e.get(side, {}) for side in SIDES)
        errors = _side_errors(e)
        ratio = _fmt(e.get("ratio"), 3) if not errors else "error"
        per_repeat = ", ".join(f"{r:.2f}" for r in e.get("ratio_per_repeat", []))
        lines.append(
            f"| {e['model']} | {config_label(e)} | {e['variant']} | {e['images_per_iteration']} | "
            f"{_rate(g.get('images_per_s_median'))} | {_rate(b.get('images_per_s_median'))} | "
            f"{_rate(p.get('images_per_s_median'))} | {ratio} | {_fmt(e.get('ratio_bare'), 3)} | {per_repeat} | "
            f"{_fmt(e.get('ratio_median_iteration'), 3)} | "
            f"{_fmt(g.get(mem), 0)} / {_fmt(b.get(mem), 0)} / {_fmt(p.get(mem), 0)} | "
            f"({e['warmup']} + {e['measured']}) x {e['repeats']} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report's tables: throughput, overhead on tiny networks, its profile, and evaluation."""
    from bench.overhead import overhead_markdown, profile_markdown

    m = report["machine"]
    cuda = m["device"].startswith("cuda")
    where = m.get("gpu") or f"{m.get('cpu', 'CPU')}, {m['cpu_count']} cores ({m['torch_threads']} torch threads)"
    lines = [
        f"### Throughput: ganzoo vs a plain PyTorch loop ({where})",
        "",
        f"torch {m['torch']}, lightning {m.get('lightning', '?')}, Python {m['python']}; {m['date']}; "
        f"load average before/after: {report.get('load_average_before')} / {report.get('load_average_after')}.",
        "",
    ]
    training = [e for e in report.get("training", []) if e["config"] != "tiny"]
    tiny = [e for e in report.get("training", []) if e["config"] == "tiny"]
    if training:
        lines += training_markdown(training, cuda)
    if tiny:
        lines += ["", *overhead_markdown(tiny)]
    if report.get("profile"):
        lines += ["", *profile_markdown(report["profile"])]
    if report.get("evaluation"):
        lines += [
            "",
            "| model | config | extractor | images | features img/s | generate + features img/s |",
            "| --- | --- | --- | --- | ---: | ---: |",
        ]
        for e in report["evaluation"]:
            if "error" in e:
                lines.append(f"| {e['model']} | {e['config']} | error: {e['error']} | | | |")
                continue
            lines.append(
                f"| {e['model']} | {e['config']} | {e['extractor']} | {e['batch_size']} x {e['channels']}x"
                f"{e['image_size']}px | {_rate(e['features_images_per_s'])} | "
                f"{_rate(e['generate_and_features_images_per_s'])} |"
            )
    errors = [
        f"{e['model']} {e['config']} {e['variant']}: {err}"
        for e in report.get("training", [])
        for err in _side_errors(e)
    ]
    lines += ["", *[f"- {note}" for note in report["notes"]]]
    if errors:
        lines += ["", "Errors:", "", *[f"- {error}" for error in dict.fromkeys(errors)]]
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: dcgan,cyclegan,biggan")
    parser.add_argument(
        "--configs", default=None, help="comma-separated: cpu,real,tiny (default all three; --quick: cpu,tiny)"
    )
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated: full,bare,plain (default all)")
    parser.add_argument("--repeats", type=int, default=None, help="A/B runs per side (default: the plan's, 3)")
    parser.add_argument("--steps", default=None, help="WARMUP,MEASURED iterations for every config")
    parser.add_argument("--variants", default=None, help=f"real configs on a GPU (default {','.join(GPU_VARIANTS)})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/<device>.json)")
    parser.add_argument("--quick", action="store_true", help="smoke check: tiny step counts, cpu and tiny configs")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation throughput")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="MODEL",
        help="also run MODEL's tiny config on the full stack under cProfile: ms per iteration by group",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--eval-worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def choices(text: str, allowed: Iterable[str], what: str) -> list[str]:
    allowed = list(allowed)
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        raise SystemExit(f"error: --{what}: {', '.join(bad) or repr(text)} not among {', '.join(allowed)}")
    return chosen


def run_profile(model: str, device: torch.device, steps: tuple[int, int], timeout: float) -> dict[str, Any]:
    """The tiny config of ``model`` on the full stack with cProfile over the timed iterations, in its own process."""
    job = Job(model, "tiny", "full", str(device), Variant(), *steps, threads=THREADS["tiny"], profile=True)
    job.values = job_values(model, "tiny", Variant())
    result = run_subprocess("bench.throughput", "--worker", job.to_json(), timeout, {"OMP_NUM_THREADS": "1"})
    entry = {"model": model, "config": "tiny", "experiment": EXPERIMENTS[model, "tiny"], "warmup": steps[0]}
    entry["overrides"] = list(OVERRIDES[model, "tiny"])
    if "error" in result:
        return {**entry, "error": result["error"]}
    return {**entry, **result["profile"], "ms_per_iteration_profiled": result["ms_per_iteration"]}


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
    models = choices(args.models, MODELS, "models")
    configs = choices(args.configs or ("cpu,tiny" if args.quick else ",".join(CONFIGS)), CONFIGS, "configs")
    sides = choices(args.sides, SIDES, "sides")
    if args.profile is not None:
        choices(args.profile, MODELS, "profile")
    notes = [DATA_NOTE, FULL_NOTE]
    if kind == "cuda":
        variants_real = [Variant.parse(v) for v in (args.variants or ",".join(GPU_VARIANTS)).split(",")]
    else:
        variants_real = [Variant.parse(v) for v in args.variants.split(",")] if args.variants else [Variant()]
        if "real" in configs:
            notes.append(
                "No GPU: the bf16-mixed / channels_last / torch.compile variants (GPU only by default) were not run."
            )
    if args.quick:
        notes.append("--quick: smoke-check step counts; the numbers mean nothing.")
    steps = tuple(int(x) for x in args.steps.split(",")) if args.steps else None
    plans = make_plans(models, configs, kind, variants_real, args.quick, steps, args.repeats)  # type: ignore[arg-type]

    info = machine_info(device)
    report: dict[str, Any] = {"machine": info, "load_average_before": load_average(), "notes": notes}
    started = time.perf_counter()
    report["training"] = run_plans(plans, device, sides, args.timeout, notes)

    if args.profile:
        profile_steps = QUICK_PLAN[:2] if args.quick else steps or PLANS[kind][args.profile, "tiny"][:2]
        report["profile"] = run_profile(args.profile, device, profile_steps, args.timeout)  # type: ignore[arg-type]
        _log(
            f"[profile {time.perf_counter() - started:.0f}s] {args.profile} tiny: {report['profile'].get('error', 'done')}"
        )

    evaluation = []
    if not args.no_eval:
        for model in models:
            for config in [c for c in configs if c != "tiny"]:
                cfg = compose(model, config, Variant())
                kind_name = (
                    "inception" if "Inception" in str(cfg.metrics.evaluation.extractor._target_) else "classifier"
                )
                warmup, measured, max_batch = QUICK_EVAL_PLAN if args.quick else EVAL_PLANS[kind][kind_name]
                job = EvalJob(model, config, str(device), warmup, measured, max_batch)
                result = run_subprocess("bench.throughput", "--eval-worker", job.to_json(), args.timeout)
                date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
                evaluation.append({"model": model, "config": config, "date": date, **result})
                what = result.get("error") or f"{_rate(result['features_images_per_s'])} img/s features"
                _log(f"[eval {time.perf_counter() - started:.0f}s] {model} {config}: {what}")
    report["evaluation"] = evaluation
    report["load_average_after"] = load_average()
    notes += [
        "images/s: real images per iteration (the loader batch; CycleGAN: image pairs) / seconds per iteration, "
        "timed from the start of the first timed iteration to the start of the iteration after the last one (so "
        "each iteration holds its callbacks and the next batch's fetch); median over the repeats. ratio = ganzoo "
        "median / plain median (>= 0.95 is the target). 'of median iterations' compares the median iteration "
        "times instead, which ignores the spikes other processes cause on a shared machine.",
        "Each measurement runs in its own process; the sides alternate (full, bare, plain first in turn).",
        "Memory: " + ("torch.cuda.max_memory_allocated during training." if kind == "cuda" else
                      "growth of the resident set from the start of training to its peak (VmHWM; ru_maxrss where "
                      "/proc is missing). The ganzoo processes also hold Lightning, loaded before training."),
        "Evaluation: the config's FID extractor on uint8 batches, alone and after generating (CycleGAN: "
        "translating) and quantising the images; one process, median batch time.",
    ]  # fmt: skip
    if kind == "cpu":
        notes.append(
            "CPU timings on a shared machine are noisy (see the load average and the per-repeat values); the real "
            "configs take seconds per iteration on a CPU, so they run few iterations and BigGAN's real config one repeat."
        )

    out = Path(args.out) if args.out else RESULTS_DIR / f"{_device_slug(info)}{'-quick' if args.quick else ''}.json"
    report = merge_previous(out, report)
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


def merge_previous(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Keep the entries of an earlier run at ``path`` that this run did not measure again.

    Training entries of the earlier format (a single ``ganzoo`` side, timed with a sync per iteration) are
    dropped: they were measured another way.
    """
    if not path.is_file():
        return report
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return report

    def key(e: dict[str, Any]) -> tuple[str, ...]:
        return (e["model"], e["config"], e.get("variant", ""))

    order = {
        (m, c): i
        for i, (m, c) in enumerate(sorted(EXPERIMENTS, key=lambda mc: (MODELS.index(mc[0]), CONFIGS.index(mc[1]))))
    }
    kept_any = False
    for section in ("training", "evaluation"):
        new = {key(e) for e in report.get(section, [])}
        kept = [
            e for e in previous.get(section, [])
            if key(e) not in new and (section != "training" or "plain" in e and "ganzoo" not in e)
        ]  # fmt: skip
        if kept:
            kept_any = True
            report[section] = sorted(
                kept + report.get(section, []), key=lambda e: (order[e["model"], e["config"]], key(e))
            )
    if not report.get("profile") and previous.get("profile"):
        report["profile"] = previous["profile"]
        kept_any = True
    if kept_any:
        report["notes"].append(
            f"Entries dated before {report['machine']['date']} are kept from an earlier run (see each entry's date in "
            "the JSON)."
        )
    return report


if __name__ == "__main__":
    main()
