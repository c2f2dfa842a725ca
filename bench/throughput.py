"""``python -m bench.throughput`` (``make bench``): training and evaluation throughput of ganzoo's models.

For each model (dcgan, cyclegan, pix2pix, biggan) at three configs, ``cpu`` (the CPU-sized experiment, e.g.
``experiment=dcgan_fmnist``), ``real`` (the reference recipe, e.g. ``experiment=dcgan_cifar10``) and ``tiny``
(the CPU-sized experiment with networks so narrow that the arithmetic is negligible: the framework's own
cost per iteration, see :mod:`bench.overhead`), it times three sides:

* **full**: what ``python -m ganzoo.train experiment=<experiment>`` runs. The experiment is composed with
  ``ganzoo.train.compose_config`` and trained by ``ganzoo.train.train`` itself, with the whole default
  callbacks group (progress bar, non-finite guard, preemption and failure checkpoints, step checkpoints at
  their intervals and ``last.ckpt``, sample sheets at their intervals, model summary, metrics log) and the
  CSV logger, writing into a temporary run directory. Only two things differ: the data is the bench's
  in-memory synthetic batches (:class:`bench.trainer_parts.SyntheticDataModule`, with the config's image size,
  channels, classes and batch size), and the metrics group is removed (``~metrics``): FID evaluation steps
  are not training iterations (their speed is measured apart, below). A timing callback is appended;
* **bare**: the same LightningModule trained by a bare ``lightning.Trainer`` (one device, a CSVLogger at the
  config's ``log_every_n_steps``; no checkpointing, progress bar, model summary or other callbacks): the
  module and Lightning's loop alone;
* **plain**: the same networks (fresh instances built from the same config and seed) trained by the
  plain-PyTorch loop of :mod:`tests.references.loops`, which the tests prove computes the same weights;

on the same in-memory synthetic batches (uniform noise in [-1, 1] of the config's shape and loader batch
size; uniform class labels; pairs of such images for CycleGAN and pix2pix), so no side decodes images and the
comparison is of the training-step machinery. Throughput is real images per second, the loader batch (image
pairs for CycleGAN and pix2pix) over the wall time of an iteration, in steady state: the first ``warmup``
iterations are not timed. The clock reads at the start of each iteration (after the batch reached the device), so
an iteration's time holds its step, every callback after it (checkpoints and sheets at their steps included) and
the next batch's fetch. On a GPU the device is synchronised once at each end of the timed window, never per
iteration (a sync per step would stall the host's run-ahead that real training gets); on a CPU, where syncs are
free, each iteration's time is kept too.
Each measurement runs in its own Python process (so peak memory is per measurement and no allocator state
is shared), the sides alternate (full, bare, plain; then bare, plain, full; ...) and medians over
``--repeats`` are reported; the ratios are each ganzoo side's median over plain's.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` during training; on a CPU the peak resident set
during training (Linux: VmHWM after resetting it through ``/proc/self/clear_refs`` at the start of
training; elsewhere ``ru_maxrss``, the process's lifetime peak).

Evaluation throughput: images per second through the FID feature extractor each config evaluates with
(the Fashion-MNIST classifier, untrained, or InceptionV3, with random weights when the real file is not in
torch.hub's cache: the speed is the same), alone and after generating (translating, for CycleGAN and pix2pix)
and quantising the images as the evaluation callback does.

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

The pieces live in :mod:`bench.plans` (what is timed), :mod:`bench.sides` (the three sides),
:mod:`bench.workers` (the processes), :mod:`bench.evaluation` and :mod:`bench.report` (the results files).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench import RESULTS_DIR
from bench.evaluation import EvalJob, measure_evaluation, run_evaluations
from bench.machine import load_average, machine_info
from bench.plans import CONFIGS, GPU_VARIANTS, MODELS, PLANS, QUICK_PLAN, SIDES, Variant, choices, make_plans
from bench.report import DATA_NOTE, FULL_NOTE, device_slug, markdown, merge_previous, method_notes, write_results
from bench.sides import measure
from bench.workers import Job, log, run_plans, run_profile


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {','.join(MODELS)}")
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # One measurement, in a process of its own (bench.workers.run_subprocess).
    if args.worker:
        Path(args.result).write_text(json.dumps(measure(Job.from_json(args.worker))))
        return
    if args.eval_worker:
        Path(args.result).write_text(json.dumps(measure_evaluation(EvalJob.from_json(args.eval_worker))))
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
        log(
            f"[profile {time.perf_counter() - started:.0f}s] {args.profile} tiny: {report['profile'].get('error', 'done')}"
        )

    evaluation = [] if args.no_eval else run_evaluations(models, configs, device, args.quick, args.timeout, started)
    report["evaluation"] = evaluation
    report["load_average_after"] = load_average()
    notes += method_notes(kind)

    out = Path(args.out) if args.out else RESULTS_DIR / f"{device_slug(info)}{'-quick' if args.quick else ''}.json"
    report = merge_previous(out, report)
    table_path = write_results(out, report, markdown(report))
    log(f"wrote {out} and {table_path} ({time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
