"""``python -m bench.gpu_check`` (``make gpu-check``): one command that shows ganzoo's training on a CUDA GPU.

On one CUDA GPU, within a time budget (``--budget``, default 480 s: 8 minutes), it runs

1. **host syncs**: a few iterations of each model's reference recipe (dcgan_cifar10, cyclegan_horse2zebra,
   pix2pix_facades, biggan_cifar10) on the full stack of ``python -m ganzoo.train``, watched by
   :class:`bench.host_syncs.HostSyncWatch`: ``torch.cuda.set_sync_debug_mode("error")`` and counted host
   conversions (``Tensor.item``, ``tolist``, ``__bool__``, ``cpu``, ``numpy``) in every iteration that is not
   a log, evaluation, sheet or checkpoint step;
2. **throughput** of each reference recipe, ganzoo's full stack against the plain loop (the machinery of
   :mod:`bench.throughput`, one repeat each) in fp32, bf16 (bf16-mixed), bf16+channels_last and
   bf16+channels_last+compile; and CUDA graphs (``model.compile=reduce-overhead``; ``net.compile(mode=
   "reduce-overhead")`` on the plain side) for the smallest recipes: DCGAN at 32 and 64 px, BigGAN's
   CPU-sized recipe;
3. **evaluation**: FID/IS evaluation throughput at 32 px (BigGAN's CIFAR recipe, and DCGAN's at 32 px):
   generating and Inception features, images/s, with the real-statistics cache warm; the Inception weights
   are torch.hub's file when present, else random weights of the same architecture (said in the output);
4. **DDP**: a one-process NCCL DDP run of each model (``trainer=ddp trainer.devices=1``) for a few iterations;

each measurement in its own process, with the data replaced by in-memory synthetic batches (no dataset is
needed) and the metrics group removed from training runs (evaluation is measured in part 3). Parts run in the
order of what the goals need most (host syncs, bf16 and fp32 throughput, evaluation, compiled DCGAN and
BigGAN, DDP, the rest); one that fails is recorded with its one-line error and the others still run; once the
budget is spent the remaining ones are skipped with a note. Results: ``bench/results/gpu.json`` and
``gpu.md`` (``--out``), with the device name, torch and CUDA versions and the commit; the goals are printed
next to the numbers: ganzoo / plain >= 0.97 for each reference recipe in bf16, bf16+channels_last+compile
>= 1.5x the fp32 plain loop on DCGAN-64 and BigGAN CIFAR, and evaluation >= 2,000 images/s at 32 px on an
H100-class GPU. Exit status: 1 when a part failed or found host syncs, 2 without a CUDA GPU, else 0 (goals
met or not, parts skipped for the budget or not).

Development: ``--allow-cpu`` runs every part on the CPU instead, with the tiny networks of
:mod:`bench.overhead`, fp32 only and a few iterations, to test the plumbing on a machine without a GPU (the
numbers mean nothing; the results go to a temporary folder unless ``--out`` is given).

Examples::

    python -m bench.gpu_check                       # = make gpu-check
    python -m bench.gpu_check --budget 900 --models dcgan,biggan
    make gpu-check ARGS="--parts host_syncs,ddp"
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench import RESULTS_DIR
from bench.configs import full_stack_config
from bench.evaluation import random_inception_weights
from bench.machine import commit, machine_info
from bench.plans import EXPERIMENTS, MODELS, THREADS, Plan, Variant, choices
from bench.report import fmt, fmt_rate, write_results
from bench.synthetic import data_spec
from bench.timing import synchronize, time_batches, window_statistics
from bench.workers import log, quiet_lightning, run_plans, run_subprocess, training_settings

NO_GPU = (
    "error: make gpu-check needs a CUDA GPU (torch.cuda.is_available() is False); on this machine run the CPU "
    "benches instead: make bench (python -m bench.throughput; python -m bench.overhead for the per-iteration overhead)"
)

PARTS = ("host_syncs", "throughput", "evaluation", "ddp")
TITLES = {
    "host_syncs": "1. Host syncs in training iterations",
    "throughput": "2. Training throughput: ganzoo (full stack) vs the plain loop",
    "evaluation": "3. FID/IS evaluation throughput at 32 px",
    "ddp": "4. DDP, one process",
}
VARIANTS = ("fp32", "bf16", "bf16+channels_last", "bf16+channels_last+compile")
#: The CUDA-graphs variant and the (model, config) it runs at: the recipes small enough for launch costs to show.
CUDA_GRAPHS = "bf16+channels_last+compile=reduce-overhead"
CUDA_GRAPH_PLANS = (("dcgan", "cpu"), ("dcgan", "real"), ("biggan", "cpu"))
#: Warm-up and timed iterations of the throughput measurements on a GPU.
GPU_STEPS = {"dcgan": (10, 100), "cyclegan": (10, 50), "pix2pix": (10, 100), "biggan": (10, 50)}
CPU_STEPS = (1, 3)
#: Iterations of the host-sync and DDP runs.
HOST_SYNC_STEPS = {"cuda": 30, "cpu": 6}
DDP_STEPS = {"cuda": 20, "cpu": 5}
#: Evaluation: (generated images timed, largest batch, real images for the statistics).
EVAL_SIZES = {"cuda": (10000, 500, 10000), "cpu": (8, 4, 8)}
#: The recipes evaluated (config overrides): both at 32 px.
EVAL_RECIPES = {
    "biggan": ["experiment=biggan_cifar10"],
    "dcgan": ["experiment=dcgan_cifar10", "data.image_size=32"],
}
#: Seconds a process may take at most (the budget's remainder caps it further).
LIMITS = {"host_syncs": 150, "throughput": 150, "compile": 300, "evaluation": 240, "ddp": 150}
#: A process is not started with less than this left of the budget.
MIN_LEFT_S = 15

GOAL_RATIO = 0.97
GOAL_SPEEDUP = 1.5
GOAL_EVAL = 2000.0


# ------------------------------------------------------------------------------------------------ workers
def host_sync_worker(job: dict[str, Any]) -> dict[str, Any]:
    """The full stack for a few iterations under :class:`bench.host_syncs.HostSyncWatch`."""
    import importlib.util

    from bench.trainer_parts import REMEMBERED, remembered
    from ganzoo.train import train

    if importlib.util.find_spec("bench.host_syncs") is None:
        raise RuntimeError("bench/host_syncs.py (HostSyncWatch) is not in this checkout")
    device = torch.device(job["device"])
    training_settings(device)
    quiet_lightning()
    watch = remembered(
        "host_syncs", {"_target_": "bench.host_syncs.HostSyncWatch", "cuda_errors": device.type == "cuda"}
    )
    failure = None
    with tempfile.TemporaryDirectory(prefix="ganzoo-gpu-check-") as tmp:
        cfg = full_stack_config(
            job["model"], job["config"], Variant(), device, job["steps"], tmp, {"host_syncs": watch}
        )
        try:
            train(cfg)
        except Exception as e:  # a CUDA sync error stops the run: that is a finding, recorded with the rest
            failure = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    found = REMEMBERED.get("host_syncs")
    if found is None:
        raise RuntimeError(f"the run failed before the watch was built: {failure}")
    violations = [str(v) for v in found.violations]
    return {
        "steps": job["steps"],
        "watched": int(found.watched),
        "violations": violations[:50],
        "violation_count": len(violations),
        "train_error": failure,
        "cuda_errors": device.type == "cuda",
    }


def ddp_worker(job: dict[str, Any]) -> dict[str, Any]:
    """``trainer=ddp trainer.devices=1`` (``ddp_cpu`` on a CPU: gloo) on the full stack through ``train(cfg)``."""
    from bench.trainer_parts import REMEMBERED, clock_entry
    from ganzoo.train import train

    device = torch.device(job["device"])
    training_settings(device)
    quiet_lightning()
    steps = job["steps"]
    warmup = max(1, steps // 4)
    clock = clock_entry(warmup, steps - warmup - 1)
    group = "ddp" if device.type == "cuda" else "ddp_cpu"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganzoo-gpu-check-") as tmp:
        cfg = full_stack_config(
            job["model"], job["config"], Variant(), device, steps, tmp, {"bench_clock": clock},
            overrides=[f"trainer={group}", "trainer.devices=1"],
        )  # fmt: skip
        metrics = train(cfg)
        checkpoints = sorted(p.name for p in Path(tmp, "checkpoints").glob("*.ckpt"))
    seconds = time.perf_counter() - started
    timer = REMEMBERED["clock"]
    window = window_statistics(timer.clock.stamps, steps - warmup - 1, 1)
    losses = {k: v for k, v in metrics.items() if "loss" in k}
    return {
        "steps": steps,
        "seconds": seconds,
        "ms_per_iteration": window["ms_per_iteration"],
        "strategy": timer.info.get("strategy"),
        "world_size": timer.info.get("world_size"),
        "backend": timer.info.get("backend"),
        "losses_finite": all(math.isfinite(v) for v in losses.values()) and bool(losses),
        "losses": losses,
        "checkpoints": checkpoints,
    }


def evaluation_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Evaluation throughput of each recipe in ``EVAL_RECIPES``: real statistics cached first, then timed."""
    results = []
    for model in job["models"]:
        try:
            results.append({"model": model, **_evaluation_of(model, job)})
        except Exception as e:  # one recipe failing leaves the other's number
            results.append({"model": model, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"})
    return {"recipes": results}


def _evaluation_of(model: str, job: dict[str, Any]) -> dict[str, Any]:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    from ganzoo.images import to_uint8
    from ganzoo.metrics.evaluation import instantiate_for_data
    from ganzoo.train import compose_config

    device = torch.device(job["device"])
    training_settings(device)
    samples, max_batch, real_images = job["samples"], job["batch"], job["real_images"]
    with tempfile.TemporaryDirectory(prefix="ganzoo-gpu-check-") as tmp:
        weights_path, weights = random_inception_weights(Path(tmp))
        cfg = compose_config([*EVAL_RECIPES[model], "metrics=inception"], output_dir=tmp)
        with open_dict(cfg):
            evaluation_cfg = cfg.metrics.evaluation
            evaluation_cfg.extractor.weights_path = str(weights_path)
            evaluation_cfg.extractor.download = False
            evaluation_cfg.num_samples = samples
            evaluation_cfg.batch_size = min(int(evaluation_cfg.batch_size), max_batch)
            evaluation_cfg.cache_dir = str(Path(tmp, "cache"))
            cfg.data = OmegaConf.create(
                {
                    "_target_": "bench.trainer_parts.SyntheticDataModule",
                    "name": str(cfg.data.name),
                    **data_spec(cfg, model),
                    "eval_images": real_images,
                }
            )
        datamodule = instantiate(cfg.data)
        datamodule.setup()
        started = time.perf_counter()
        instantiate_for_data(cfg.metrics.evaluation, datamodule, training=False).setup(datamodule, device)
        cold = time.perf_counter() - started
        evaluation = instantiate_for_data(cfg.metrics.evaluation, datamodule, training=False)
        started = time.perf_counter()
        evaluation.setup(datamodule, device)  # the real statistics from the cache written just now
        warm = time.perf_counter() - started
        if evaluation.statistics_file is None or not evaluation.statistics_file.is_file():
            raise RuntimeError("the real statistics were not cached")
        torch.manual_seed(0)
        net = instantiate(cfg.model, _convert_="all").to(device)
        batch = evaluation.batch_size
        with torch.no_grad():
            generate_and_features = time_batches(
                lambda: evaluation.extractor(to_uint8(net.generate(batch))),
                device,
                1,
                3 if device.type == "cuda" else 1,
            )
            synchronize(device)
            started = time.perf_counter()
            values = evaluation.evaluate(net)
            synchronize(device)
            seconds = time.perf_counter() - started
    return {
        "experiment": EVAL_RECIPES[model][0].split("=", 1)[1],
        "image_size": int(cfg.data.image_size),
        "metrics": list(evaluation.metric_names),
        "samples": samples,
        "batch_size": batch,
        "real_images": real_images,
        "weights": weights,
        "images_per_s": samples / seconds,
        "seconds": seconds,
        "generate_and_features_images_per_s": batch / generate_and_features,
        "setup_cold_s": cold,
        "setup_warm_s": warm,
        "values": {k: float(v) for k, v in values.items()},
    }


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "host_syncs": host_sync_worker,
    "ddp": ddp_worker,
    "evaluation": evaluation_worker,
}


# ------------------------------------------------------------------------------------------------ driver
@dataclass
class Task:
    """One piece of work: its part, a label, and the function that runs it (returns records for the part)."""

    part: str
    label: str
    run: Callable[[float], list[dict[str, Any]]]
    #: What the task measures (model, config, variant; models for the evaluation): for its row when skipped.
    meta: dict[str, Any] = field(default_factory=dict)


def _versions(device: torch.device) -> dict[str, Any]:
    info = machine_info(device)
    info["cuda"] = torch.version.cuda
    if device.type == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        props = torch.cuda.get_device_properties(device)
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
    return info


class Budget:
    """The time left of the whole check, and how long the next process may run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.deadline = self.start + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def limit(self, cap: float) -> float | None:
        """Seconds the next process may take, or None when too little of the budget is left to start one."""
        left = self.left()
        return None if left < MIN_LEFT_S else min(cap, left)


def plan_tasks(args: argparse.Namespace, device: torch.device, notes: list[str]) -> list[Task]:
    """Every task of the chosen parts, in the order of what the goals need most."""
    cpu = device.type == "cpu"
    kind = device.type
    config = "tiny" if cpu else "real"  # on a CPU: the tiny networks, so the plumbing runs in seconds
    # On a shared CPU one thread each: several OpenMP threads per process stall each other under load.
    env = {"OMP_NUM_THREADS": "1"} if cpu else None
    models = args.models
    tasks: list[tuple[int, Task]] = []

    def worker_task(part: str, job: dict[str, Any], cap: float) -> Callable[[float], list[dict[str, Any]]]:
        def run(limit: float) -> list[dict[str, Any]]:
            payload = json.dumps({"kind": part, **job})
            result = run_subprocess("bench.gpu_check", "--worker", payload, min(cap, limit), env)
            if part == "evaluation":
                if "error" in result:
                    return [{"model": model, "status": "error", **result} for model in job["models"]]
                return [{**r, "status": "error" if "error" in r else "ok"} for r in result["recipes"]]
            return [{**job, **_status(part, result)}]

        return run

    if "host_syncs" in args.parts:
        for model in models:
            job = {"model": model, "config": config, "device": str(device), "steps": HOST_SYNC_STEPS[kind]}
            fn = worker_task("host_syncs", job, LIMITS["host_syncs"])
            tasks.append((1, Task("host_syncs", f"host syncs {model}", fn, {"model": model, "config": config})))

    if "throughput" in args.parts:
        variants = ["fp32"] if cpu else [v for v in args.variants if v != CUDA_GRAPHS]
        if cpu:
            notes.append("--allow-cpu: throughput in fp32 only (bf16, channels_last and compile are GPU variants).")

        def priority(model: str, variant: str) -> int:
            if variant in ("bf16", "fp32"):
                return 2
            if "compile" in variant:
                return 4 if model in ("dcgan", "biggan") else 7
            return 6

        def plan_task(
            model: str, plan_config: str, variant: str, cap: float
        ) -> Callable[[float], list[dict[str, Any]]]:
            def run(limit: float) -> list[dict[str, Any]]:
                warmup, measured = CPU_STEPS if cpu else GPU_STEPS[model]
                plan = Plan(model, plan_config, Variant.parse(variant), warmup, measured, 1, THREADS.get(plan_config))
                deadline = time.monotonic() + limit
                entries = run_plans([plan], device, ("full", "plain"), cap, notes, deadline, log_prefix="    ")
                return [{**e, "status": _throughput_status(e)} for e in entries]

            return run

        for model in models:
            for variant in variants:
                cap = LIMITS["compile" if "compile" in variant else "throughput"]
                label = f"throughput {model} {config} {variant}"
                meta = {"model": model, "config": config, "variant": variant}
                fn = plan_task(model, config, variant, cap)
                tasks.append((priority(model, variant), Task("throughput", label, fn, meta)))
        if cpu:
            notes.append("--allow-cpu: CUDA graphs (compile=reduce-overhead) need CUDA: not run.")
        elif CUDA_GRAPHS in args.variants or args.cuda_graphs:
            for model, plan_config in CUDA_GRAPH_PLANS:
                if model in models:
                    label = f"throughput {model} {plan_config} {CUDA_GRAPHS}"
                    fn = plan_task(model, plan_config, CUDA_GRAPHS, LIMITS["compile"])
                    meta = {"model": model, "config": plan_config, "variant": CUDA_GRAPHS}
                    tasks.append((8, Task("throughput", label, fn, meta)))

    if "evaluation" in args.parts:
        samples, batch, real = EVAL_SIZES[kind]
        job = {
            "device": str(device),
            "models": [m for m in EVAL_RECIPES if m in models] or list(EVAL_RECIPES)[:1],
            "samples": samples,
            "batch": batch,
            "real_images": real,
        }
        fn = worker_task("evaluation", job, LIMITS["evaluation"])
        tasks.append((3, Task("evaluation", "evaluation", fn, {"models": job["models"]})))

    if "ddp" in args.parts:
        for model in models:
            job = {"model": model, "config": config, "device": str(device), "steps": DDP_STEPS[kind]}
            fn = worker_task("ddp", job, LIMITS["ddp"])
            tasks.append((5, Task("ddp", f"ddp {model}", fn, {"model": model, "config": config})))

    return [task for _, task in sorted(tasks, key=lambda pt: pt[0])]


def _status(part: str, result: dict[str, Any]) -> dict[str, Any]:
    """A worker's result with its status: ok / pass / fail / error."""
    if "error" in result:
        return {"status": "error", **result}
    if part == "host_syncs":
        clean = not result["violation_count"] and not result.get("train_error") and result["watched"] > 0
        return {"status": "pass" if clean else "fail", **result}
    if part == "ddp":
        return {"status": "ok" if result.get("losses_finite") else "fail", **result}
    return {"status": "ok", **result}


def _throughput_status(entry: dict[str, Any]) -> str:
    runs = [r for side in ("full", "plain") for r in entry.get(side, {}).get("runs", [])]
    if any(r.get("skipped") for r in runs):
        return "skipped"
    return "error" if any("error" in r for r in runs) else "ok"


def goals(report: dict[str, Any], config: str, models: list[str]) -> list[dict[str, Any]]:
    """The goals of ``models``, each with its value, target and whether it is met (None: not measured)."""
    throughput = report["parts"].get("throughput", [])

    def entry(model: str, variant: str) -> dict[str, Any] | None:
        found = [
            e
            for e in throughput
            if e.get("model") == model and e.get("config") == config and e.get("variant") == variant
        ]
        return found[0] if found and found[0].get("status") == "ok" else None

    def rate(e: dict[str, Any] | None, side: str) -> float | None:
        return e.get(side, {}).get("images_per_s_median") if e else None

    out = []
    for model in models:
        e = entry(model, "bf16")
        value = e.get("ratio") if e else None
        out.append(
            {
                "goal": f"{model} {config} bf16: ganzoo / plain >= {GOAL_RATIO}",
                "value": value,
                "met": None if value is None else value >= GOAL_RATIO,
            }
        )
    for model in [m for m in ("dcgan", "biggan") if m in models]:
        fast, base = entry(model, "bf16+channels_last+compile"), entry(model, "fp32")
        value = rate(fast, "full") / rate(base, "plain") if rate(fast, "full") and rate(base, "plain") else None
        plain_value = rate(fast, "plain") / rate(base, "plain") if rate(fast, "plain") and rate(base, "plain") else None
        out.append(
            {
                "goal": f"{model} {config}: ganzoo bf16+channels_last+compile >= {GOAL_SPEEDUP}x the fp32 plain loop",
                "value": value,
                "met": None if value is None else value >= GOAL_SPEEDUP,
                "detail": f"plain loop bf16+channels_last+compile: {fmt(plain_value, 2)}x",
            }
        )
    for e in report["parts"].get("evaluation", []):
        value = e.get("images_per_s") if e.get("status") == "ok" else None
        out.append(
            {
                "goal": f"evaluation {e.get('model')} 32 px: >= {GOAL_EVAL:,.0f} images/s (H100-class GPU)",
                "value": value,
                "met": None if value is None else value >= GOAL_EVAL,
                "detail": f"on {report['machine'].get('gpu', 'a CPU')}",
            }
        )
    return out


def markdown(report: dict[str, Any]) -> str:
    """gpu.md: the goals, then each part's table, the notes and what was skipped."""
    m = report["machine"]
    where = m.get("gpu") or f"CPU ({m.get('cpu', '?')}; --allow-cpu development run, the numbers mean nothing)"
    lines = [
        f"### make gpu-check on {where}",
        "",
        f"torch {m['torch']}, CUDA {m.get('cuda')}, cuDNN {m.get('cudnn', '-')}, lightning {m.get('lightning', '?')}, "
        f"Python {m['python']}; commit {report['commit']}; {m['date']}; {report['elapsed_s']:.0f} s of a "
        f"{report['budget_s']:.0f} s budget.",
        "",
        "| goal | value | met |",
        "| --- | ---: | --- |",
    ]
    for g in report["goals"]:
        met = "not measured" if g["met"] is None else "yes" if g["met"] else "no"
        detail = f" ({g['detail']})" if g.get("detail") else ""
        lines.append(f"| {g['goal']}{detail} | {fmt(g['value'], 3)} | {met} |")
    parts = report["parts"]
    if "host_syncs" in parts:
        lines += [
            "",
            f"#### {TITLES['host_syncs']}",
            "",
            "| model | config | iterations | watched | host syncs | status |",
        ]
        lines.append("| --- | --- | ---: | ---: | ---: | --- |")
        for r in parts["host_syncs"]:
            if r["status"] in ("error", "skipped"):
                lines.append(f"| {r['model']} | {r.get('config')} | | | | {r['status']}: {r.get('error', '')} |")
                continue
            lines.append(
                f"| {r['model']} | {r['config']} | {r['steps']} | {r['watched']} | {r['violation_count']} | {r['status']} |"
            )
            lines += [f"|  |  |  |  |  | {v} |" for v in r["violations"][:10]]
            if r.get("train_error"):
                lines.append(f"|  |  |  |  |  | the run stopped: {r['train_error']} |")
    if "throughput" in parts:
        lines += [
            "",
            f"#### {TITLES['throughput']}",
            "",
            "| model | config | variant | ganzoo img/s | plain img/s | ganzoo / plain | ganzoo / fp32 plain | "
            f"peak {'GPU' if m.get('gpu') else 'RSS'} MB ganzoo / plain | iterations (warm-up + timed) | status |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
        ]
        fp32_plain = {
            (e["model"], e["config"]): e["plain"]["images_per_s_median"]
            for e in parts["throughput"]
            if e.get("variant") == "fp32" and e.get("plain")
        }
        for e in parts["throughput"]:
            full, plain = e.get("full", {}), e.get("plain", {})
            base = fp32_plain.get((e["model"], e["config"]))
            speedup = full.get("images_per_s_median") / base if full.get("images_per_s_median") and base else None
            errors = "; ".join(
                dict.fromkeys(e.removeprefix("skipped: ") for e in full.get("errors", []) + plain.get("errors", []))
            )
            lines.append(
                f"| {e['model']} | {e['config']} ({e['experiment']}) | {e['variant']} | "
                f"{fmt_rate(full.get('images_per_s_median'))} | {fmt_rate(plain.get('images_per_s_median'))} | "
                f"{fmt(e.get('ratio'), 3)} | {fmt(speedup, 2)} | {fmt(full.get('peak_mb'), 0)} / "
                f"{fmt(plain.get('peak_mb'), 0)} | {e['warmup']} + {e['measured']} | {e['status']}"
                f"{': ' + errors if errors else ''} |"
            )
    if "evaluation" in parts:
        lines += [
            "",
            f"#### {TITLES['evaluation']}",
            "",
            "| model | recipe | images | evaluate() img/s | generate + features img/s (per batch) | real statistics: "
            "cold / warm setup s | Inception weights | status |",
            "| --- | --- | --- | ---: | ---: | --- | --- | --- |",
        ]
        for r in parts["evaluation"]:
            if r["status"] != "ok":
                lines.append(f"| {r.get('model')} | | | | | | | {r['status']}: {r.get('error', '')} |")
                continue
            lines.append(
                f"| {r['model']} | {r['experiment']} ({r['image_size']} px, {'+'.join(r['metrics'])}) | "
                f"{r['samples']:,} in batches of {r['batch_size']} | {fmt_rate(r['images_per_s'])} | "
                f"{fmt_rate(r['generate_and_features_images_per_s'])} | {r['setup_cold_s']:.1f} / {r['setup_warm_s']:.1f} | "
                f"{r['weights']} | ok |"
            )
    if "ddp" in parts:
        lines += ["", f"#### {TITLES['ddp']}", "", "| model | config | strategy | backend | processes | iterations | "]
        lines[-1] += "ms/iteration | losses finite | status |"
        lines.append("| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |")
        for r in parts["ddp"]:
            if r["status"] in ("error", "skipped"):
                lines.append(f"| {r['model']} | {r.get('config')} | | | | | | | {r['status']}: {r.get('error', '')} |")
                continue
            lines.append(
                f"| {r['model']} | {r['config']} | {r['strategy']} | {r['backend']} | {r['world_size']} | {r['steps']} | "
                f"{fmt(r['ms_per_iteration'], 2)} | {r['losses_finite']} | {r['status']} |"
            )
    lines += ["", *[f"- {note}" for note in report["notes"]]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check (default 480)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {','.join(PARTS)}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {','.join(MODELS)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="throughput variants (bench.throughput's names)")
    parser.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false", help="skip the CUDA-graphs runs")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/gpu.json; .md beside it)")
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _cuda_available() -> bool:
    with warnings.catch_warnings():  # a broken driver warns; the one error line says what matters
        warnings.simplefilter("ignore")
        return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        Path(args.result).write_text(json.dumps(WORKERS[job["kind"]](job)))
        return 0
    cuda = _cuda_available()
    if not cuda and not args.allow_cpu:
        print(NO_GPU, file=sys.stderr)
        return 2

    args.parts = choices(args.parts, PARTS, "parts")
    args.models = choices(args.models, MODELS, "models")
    args.variants = [Variant.parse(v).name for v in args.variants.split(",") if v.strip()]
    budget = Budget(args.budget)
    device = torch.device("cuda" if cuda else "cpu")
    notes: list[str] = [
        "Each measurement runs in its own process, on in-memory synthetic batches (no dataset needed); training runs "
        "are `python -m ganzoo.train`'s full stack (compose_config + train(cfg), default callbacks and CSV logger) "
        "with the metrics group removed (~metrics): evaluation is timed in part 3.",
        "Host syncs: bench.host_syncs.HostSyncWatch watches every iteration that is not a log, evaluation, sheet "
        "or checkpoint step (nor the first or last): "
        + ("torch.cuda.set_sync_debug_mode('error') and " if cuda else "")
        + "counted Tensor.item/tolist/__bool__/cpu/numpy calls.",
        "Throughput: one repeat per side (ganzoo first, then plain), the device synchronised only at the two ends "
        "of the timed window; images/s of the loader batch (CycleGAN, pix2pix: pairs). 'ganzoo / fp32 plain' is "
        "ganzoo's images/s over the fp32 plain loop's at the same config. The ganzoo side's compile mode is "
        "model.compile=<mode> (true for the default mode).",
    ]
    if not cuda:
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ganzoo-gpu-check-")) / "gpu.json"
        notes.insert(0, "--allow-cpu: a development run on the CPU with the tiny networks and a few iterations.")
    else:
        out = Path(args.out) if args.out else RESULTS_DIR / "gpu.json"
    config = "real" if cuda else "tiny"

    report: dict[str, Any] = {
        "machine": _versions(device),
        "commit": commit(),
        "budget_s": args.budget,
        "allow_cpu": not cuda,
        "parts": {part: [] for part in PARTS if part in args.parts},
        "notes": notes,
    }
    tasks = plan_tasks(args, device, notes)
    skipped = []
    for number, task in enumerate(tasks, 1):
        limit = budget.limit(LIMITS["compile"] if "compile" in task.label else LIMITS.get(task.part, 150))
        if limit is None:
            skipped.append(task.label)
            report["parts"][task.part].extend(_skipped_records(task))
            continue
        log(f"[{number}/{len(tasks)} {budget.elapsed():.0f}s] {task.label}")
        try:
            records = task.run(limit)
        except Exception as e:  # the driver's own failure in one task: recorded, the others still run
            records = [{"status": "error", "error": f"{type(e).__name__}: {e}", "label": task.label}]
        for record in records:
            log(f"    {task.label}: {record.get('status')}" + (f" ({record['error']})" if record.get("error") else ""))
        report["parts"][task.part].extend(records)
    if skipped:
        notes.append(f"Skipped, the {args.budget:.0f} s budget being spent: {', '.join(skipped)}.")
    for part in report["parts"]:
        order = {model: i for i, model in enumerate(MODELS)}
        report["parts"][part].sort(
            key=lambda r: (order.get(r.get("model"), 9), str(r.get("config")), _variant_order(r))
        )
    report["elapsed_s"] = budget.elapsed()
    report["goals"] = goals(report, config, args.models)
    table_path = write_results(out, report, markdown(report))
    log(f"wrote {out} and {table_path} ({budget.elapsed():.0f}s)")
    failed = [r for records in report["parts"].values() for r in records if r.get("status") in ("error", "fail")]
    return 1 if failed else 0


def _variant_order(record: dict[str, Any]) -> int:
    variants = [*VARIANTS, CUDA_GRAPHS]
    name = record.get("variant")
    return variants.index(name) if name in variants else len(variants)


def _skipped_records(task: Task) -> list[dict[str, Any]]:
    """What a task skipped for the budget leaves in its part's table."""
    record: dict[str, Any] = {"status": "skipped", "error": "the time budget was spent", "label": task.label}
    if task.part == "evaluation":
        return [{**record, "model": model} for model in task.meta["models"]]
    record.update(task.meta)
    if task.part == "throughput":
        record.update(experiment=EXPERIMENTS[task.meta["model"], task.meta["config"]], warmup="-", measured="-")
    return [record]


if __name__ == "__main__":
    sys.exit(main())
