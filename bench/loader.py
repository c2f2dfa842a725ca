"""``python -m bench.loader``: how fast ganzoo's loaders deliver CycleGAN's official recipe, and how many workers
a GPU needs.

The hardest loading case of ganzoo's recipes: ``experiment=cyclegan_horse2zebra`` (batch 1; every item two
256x256 JPEGs, decoded, stretched to 286x286, randomly cropped to 256 and flipped). A temporary dataset in the
official layout is written first: ``--images`` JPEGs per training domain at the official raw size, 256x256,
photo-like (smooth colour fields, shapes, stripes and grain; JPEG quality 95, about 35 kB each, the order of
the official files). The data module is the recipe's own (composed by Hydra, as ``python -m ganzoo.train`` composes
it), with the loader keys set per row:

* ``0``, ``1``, ``2`` workers (persistent, torch's prefetch of 2), and ``0t1``: 0 workers with one torch
  thread in the main process instead of its default (one per CPU), to show what those threads cost;
* ``auto``, as a GPU run on this machine would resolve it (``trainer=gpu``: one process), and as this CPU-only
  run resolves it when they differ.

Each row is timed in steady state: a fresh loader per repeat, ``--warmup`` batches untimed (worker start-up
included), then ``--batches`` timed (or as many as ``--seconds`` allow, at least 10), in three modes:

* **loader**: iterating the loader alone;
* **loader + copy**: a no-op step that moves the batch to the device (``cuda`` when present, else the CPU;
  non-blocking, synchronised at the end), what Lightning does before each step;
* **loader + step**: the copy plus a simulated GPU step of ``--step-ms`` (a sleep, which leaves the CPU
  free as a GPU step mostly does): does the loader keep up with ~33 pairs/s? The step alone (sleeping, no
  loader) is timed too: the ceiling of this column on this machine.

Reported are image pairs (= batches) per second, the median over ``--repeats`` and the spread. From the
1-worker rate the script states how many workers a process needs for a GPU step of ``--step-ms``. Results:
``bench/results/loader.json`` and ``.md`` (``--out``), with the CPU model, the CPUs, the commit, the load
average at the start and end of the run and at the start of each measurement. Rows and modes take turns
within each repeat, so that other processes sharing the CPUs slow all rows alike; when the load average is
high, run again. The default run takes about 2 minutes on 2 CPUs.

Examples::

    python -m bench.loader
    python -m bench.loader --repeats 5 --batches 300
    python -m bench.loader --workers 0,1,2,4,auto --step-ms 15
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from PIL import Image, ImageDraw

from bench import RESULTS_DIR
from bench.machine import commit, cpu_name, load_average
from bench.report import write_results
from bench.timing import synchronize
from ganzoo.cli import exit_on_ganzoo_error
from ganzoo.cpus import available_cpus
from ganzoo.data.loader_settings import LoaderSettings, Placement, cpus_per_process
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from ganzoo.errors import ConfigError
from ganzoo.train import compose_config

RESULTS = RESULTS_DIR / "loader"
EXPERIMENT = "cyclegan_horse2zebra"
MODES = ("loader", "loader + copy", "loader + step")


# ------------------------------------------------------------------------------ the dataset


def photo_like(rng: np.random.Generator, size: int = 256) -> Image.Image:
    """An RGB ``size`` x ``size`` image with what makes photos cost their decode time: smooth colour fields,
    hard edges (ellipses), a striped texture and sensor-like grain."""
    grid = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        x, y = rng.integers(0, size, 2)
        w, h = rng.integers(10, 120, 2)
        draw.ellipse([int(x), int(y), int(x + w), int(y + h)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    pixels = np.asarray(image, dtype=np.float32)
    yy, xx = np.mgrid[:size, :size]
    stripes = (np.sin(xx * rng.uniform(0.05, 0.3) + yy * rng.uniform(0.05, 0.3)) > 0) * rng.uniform(0, 60)
    pixels = pixels - stripes[..., None] + rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_dataset(root: Path, images: int, seed: int = 0) -> dict[str, Any]:
    """The official unpaired layout under ``root``: ``images`` JPEGs in trainA and trainB, 4 in testA and testB."""
    rng = np.random.default_rng(seed)
    sizes = []
    for folder, n in (("trainA", images), ("trainB", images), ("testA", 4), ("testB", 4)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            path = root / folder / f"{i:04d}.jpg"
            photo_like(rng).save(path, quality=95)
            sizes.append(path.stat().st_size)
    return {
        "images_per_train_domain": images,
        "size": "256x256 JPEG, quality 95",
        "mean_kB": sum(sizes) / len(sizes) / 1e3,
    }


# ------------------------------------------------------------------------------ measuring


@dataclass
class Row:
    """One loader configuration and its measured rates (image pairs per second, per repeat)."""

    name: str
    settings: dict[str, Any]
    #: torch threads of the main process for this row; None leaves them as they are.
    torch_threads: int | None = None
    rates: dict[str, list[float]] = field(default_factory=dict)
    #: The 1-minute load average at the start of each of its measurements.
    loads: list[float] = field(default_factory=list)

    def median(self, mode: str) -> float:
        return statistics.median(self.rates[mode])


def datamodule(root: Path, settings: LoaderSettings | None = None) -> UnpairedImageFolderDataModule:
    """The recipe's data module (Hydra-composed, as the training command builds it) with these loader
    settings; None keeps the recipe's own (``auto``)."""
    overrides = [f"experiment={EXPERIMENT}", f"data.data_dir={root}"]
    if settings is not None:
        keys = settings.kwargs().items()
        overrides += [f"data.{key}={'auto' if value is None else str(value).lower()}" for key, value in keys]
    return instantiate(compose_config(overrides).data)


def batches(loader: torch.utils.data.DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches over as many epochs as asked for (the sampler's epoch set as Lightning does)."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        yield from loader
        epoch += 1


def time_loader(
    root: Path,
    settings: LoaderSettings,
    mode: str,
    warmup: int,
    timed: int,
    device: torch.device,
    step_s: float,
    max_s: float,
) -> float:
    """Image pairs per second of ``timed`` batches after ``warmup`` (fewer, but at least 10, when they take more
    than ``max_s`` seconds), a fresh loader (and workers) each call."""
    data = datamodule(root, settings)
    pairs_per_batch = data.batch_size  # 1 in the official recipe
    loader = data.train_dataloader()
    stream = batches(loader)
    for _ in range(warmup):
        next(stream)
    start = time.perf_counter()
    done = 0
    while done < timed and (done < 10 or time.perf_counter() - start < max_s):
        real_a, real_b = next(stream)
        if mode != "loader":
            real_a = real_a.to(device, non_blocking=True)
            real_b = real_b.to(device, non_blocking=True)
        if mode == "loader + step":
            time.sleep(step_s)
        done += 1
    synchronize(device)
    elapsed = time.perf_counter() - start
    stream.close()
    del stream, loader, data  # shuts the workers down now rather than at a later garbage collection
    return done * pairs_per_batch / elapsed


def time_items(root: Path, items: int = 100) -> float:
    """Pairs per second that one thread makes of train items (decode, resize, crop, flip; no collation or
    transfer): a worker's work, since DataLoader workers run torch on one thread."""
    dataset = datamodule(root, LoaderSettings(0, False, False, None))
    dataset.setup()
    train_set = dataset.train_set
    keys = list(dataset.train_dataloader().sampler)[:items]  # (index, augmentation seed), as the loader draws them
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for key in keys[:10]:
            train_set[key]  # warm-up
        start = time.perf_counter()
        for key in keys:
            train_set[key]
        return len(keys) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def time_step_alone(step_s: float, steps: int = 50) -> float:
    """Steps per second of the simulated step without any loading: the most the step column can show here."""
    start = time.perf_counter()
    for _ in range(steps):
        time.sleep(step_s)
    return steps / (time.perf_counter() - start)


def rows_to_run(root: Path, workers: list[str], device: torch.device) -> list[Row]:
    """The loader settings of each requested row: fixed worker counts, and the recipe's ``auto`` as a GPU run
    (one process on this machine) and as this run resolves it (a row of its own only when it differs)."""
    rows: list[Row] = []

    def add(name: str, settings: LoaderSettings) -> None:
        same = next((row for row in rows if row.settings == asdict(settings) and row.torch_threads is None), None)
        if same is not None:
            same.name += f" = {name}"
        else:
            rows.append(Row(name, asdict(settings)))

    for spec in workers:
        if spec == "0t1":
            # The training thread's own loading, with one torch thread instead of the process's default.
            rows.append(Row("0 workers, 1 torch thread", asdict(LoaderSettings(0, False, False, None)), 1))
            continue
        if spec != "auto":
            n = int(spec)
            add(f"{n} worker{'s' if n != 1 else ''}", LoaderSettings(n, device.type == "cuda", n > 0, 2 if n else None))
            continue
        recipe = datamodule(root)  # the recipe's own loader keys: auto
        add("auto, GPU run", recipe.loader_settings(Placement("cuda", cpus_per_process(1), 1)))
        add(f"auto, {Placement.of_machine().device_type} run", recipe.loader_settings(Placement.of_machine()))
    return rows


# ------------------------------------------------------------------------------ the machine and the report


def workers_needed(rate_per_worker: float, step_ms: float) -> tuple[float, int]:
    """(pairs/s a process consumes with a ``step_ms`` step, workers for that at ``rate_per_worker`` each)."""
    demand = 1000.0 / step_ms
    return demand, max(1, math.ceil(demand / rate_per_worker))


def report(result: dict[str, Any]) -> str:
    """The Markdown table and notes."""
    m = result["machine"]
    threads = m["torch_threads"]
    lines = [
        f"### Loading CycleGAN's official recipe ({EXPERIMENT}: 256x256 JPEGs, load 286, crop 256, flip, batch 1)",
        "",
        f"{m['cpu']}, {m['cpus']} CPUs available ({m['cpu_count']} in the machine), torch {m['torch']} "
        f"({m['torch_threads']} threads in the main process), Pillow {m['pillow']}, Python {m['python']}; "
        f"device {m['device']}; commit {result['commit']}; {result['date']}. Command: `{result['command']}` "
        f"({result['seconds']:.0f} s). Load average (1, 5, 15 min) at the start {result['load_average']['start']}, "
        f"at the end {result['load_average']['end']}.",
        "",
        f"Image pairs per second, median of {result['repeats']} (min-max); {result['warmup']} warm-up batches, "
        f"then {result['batches']} timed (or what {result['seconds_per_measurement']:g} s allow); rows and modes "
        "take turns within each repeat. Load: the 1-minute load average at the start of the row's measurements "
        "(min-max).",
        "",
        "| loader | workers | prefetch | loader alone | loader + copy to device "
        f"| loader + copy + {result['step_ms']:g} ms step | load average |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["rows"]:
        cells = []
        for mode in MODES:
            rates = row["rates"][mode]
            cells.append(f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})")
        s = row["settings"]
        load = f"{min(row['loads']):.2f}-{max(row['loads']):.2f}"
        prefetch = s["prefetch_factor"] if s["prefetch_factor"] is not None else "-"
        lines.append(f"| {row['name']} | {s['num_workers']} | {prefetch} | {' | '.join(cells)} | {load} |")
    need = result["workers_needed"]
    lines += [
        "",
        f"- Dataset: {result['dataset']['images_per_train_domain']} images per train domain, "
        f"{result['dataset']['size']}, {result['dataset']['mean_kB']:.1f} kB on average (the official horse2zebra "
        "files are 256x256 JPEGs of that order).",
        f"- One thread makes {result['item_rate']:.0f} train pairs/s (two decodes, resizes, crops and flips each: "
        f"{1000 / result['item_rate']:.1f} ms a pair), what a worker does between its batches.",
        f"- One worker delivers {need['rate_per_worker']:.0f} pairs/s (the 1-worker row, loader alone). A GPU step "
        f"of {result['step_ms']:g} ms consumes {need['demand']:.0f} pairs/s per process, so it needs "
        f"{need['workers']} worker{'s' if need['workers'] != 1 else ''} (ceil of demand / rate); the '{result['step_ms']:g} ms "
        "step' column shows whether each row keeps up: the step alone (a sleep, no loading) runs at "
        f"{result['step_alone']:.1f} steps/s here.",
        "- The 'loader + step' column sleeps for the step: a GPU step leaves the CPU mostly free as well, but its "
        "launches and the copy cost some CPU time that a sleep does not.",
        f"- With 0 workers the main process decodes and augments between steps, with its {threads} torch threads; "
        "the '1 torch thread' row shows what they cost for these small per-image operations (a worker runs torch "
        "on one thread).",
    ]
    if max(max(r["loads"]) for r in result["rows"]) > m["cpus"] / 2:
        lines.append(
            "- The load average was high for this machine during part of the run (other processes share its "
            "CPUs): the rates are lower bounds; the spread shows how much the repeats disagreed."
        )
    return "\n".join(lines) + "\n"


def _positive(option: str, kind: type = int, example: str = "10") -> Any:
    """An argparse type: a positive ``kind``, else a one-line ConfigError naming ``option``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise ConfigError(f"{option} must be a positive {kind.__name__}, got {text!r}: e.g. {option} {example}")
        return value

    return parse


def _worker_specs(text: str) -> list[str]:
    """``--workers``: comma-separated worker counts, ``auto`` and ``0t1``."""
    specs = [spec.strip() for spec in text.split(",") if spec.strip()]
    bad = [spec for spec in specs if not (spec.isdigit() or spec in ("auto", "0t1"))]
    if bad or not specs:
        raise ConfigError(f"--workers takes worker counts, auto and 0t1, got {text!r}: e.g. --workers 0,1,2,auto")
    return specs


@exit_on_ganzoo_error
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.loader", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=_positive("--images", example="200"), default=200, help="JPEGs per train domain (default 200)"
    )
    parser.add_argument(
        "--workers",
        type=_worker_specs,
        default="0,0t1,1,2,auto",
        help="rows: worker counts, auto, and 0t1 (0 workers, one torch thread); default 0,0t1,1,2,auto",
    )
    parser.add_argument(
        "--warmup", type=_positive("--warmup"), default=10, help="untimed batches per measurement (default 10)"
    )
    parser.add_argument(
        "--batches",
        type=_positive("--batches", example="150"),
        default=150,
        help="timed batches per measurement (default 150)",
    )
    parser.add_argument(
        "--seconds",
        type=_positive("--seconds", float, "3"),
        default=3.0,
        help="most seconds per measurement (default 3)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive("--repeats", example="3"),
        default=3,
        help="measurements per row and mode (default 3)",
    )
    parser.add_argument(
        "--step-ms",
        type=_positive("--step-ms", float, "30"),
        default=30.0,
        help="the simulated GPU step (default 30 ms)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results path without suffix (.json, .md)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    load_start = load_average()
    step_alone = time_step_alone(args.step_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="ganzoo-loader-bench-") as tmp:
        root = Path(tmp) / "horse2zebra"
        dataset = write_dataset(root, args.images)
        item_rates: list[float] = []
        rows = rows_to_run(root, args.workers, device)
        # Rows and modes take turns within each repeat, so that a busy spell of the machine's other processes
        # falls on all of them rather than on one row's measurements.
        for repeat in range(args.repeats):
            item_rates.append(time_items(root))
            for row in rows:
                for mode in MODES:
                    row.loads.append(load_average()[0])
                    threads = torch.get_num_threads()
                    torch.set_num_threads(row.torch_threads or threads)
                    try:
                        rate = time_loader(
                            root, LoaderSettings(**row.settings), mode, args.warmup, args.batches, device,
                            args.step_ms / 1000, args.seconds,
                        )  # fmt: skip
                    finally:
                        torch.set_num_threads(threads)
                    row.rates.setdefault(mode, []).append(rate)
            done = "; ".join(f"{row.name}: " + ", ".join(f"{row.rates[m][-1]:.1f}" for m in MODES) for row in rows)
            print(f"repeat {repeat + 1}/{args.repeats} (pairs/s, {' / '.join(MODES)}): {done}", flush=True)
    one = next((r for r in rows if r.settings["num_workers"] == 1), None)
    rate = one.median("loader") if one is not None else float("nan")
    demand, workers = workers_needed(rate, args.step_ms) if one is not None else (1000.0 / args.step_ms, -1)
    result = {
        "command": "python -m bench.loader" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "commit": commit(short=True),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": {"start": load_start, "end": load_average()},
        "machine": {
            "cpu": cpu_name(),
            "cpus": available_cpus(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "pillow": Image.__version__,
            "python": platform.python_version(),
            "device": str(device),
        },
        "dataset": dataset,
        "warmup": args.warmup,
        "batches": args.batches,
        "repeats": args.repeats,
        "seconds_per_measurement": args.seconds,
        "step_ms": args.step_ms,
        "step_alone": step_alone,
        "item_rate": statistics.median(item_rates),
        "item_rates": item_rates,
        "rows": [asdict(r) for r in rows],
        "workers_needed": {"rate_per_worker": rate, "demand": demand, "workers": workers},
    }
    write_results(args.out.with_suffix(".json"), result, report(result), indent=2)
    return result


if __name__ == "__main__":
    main()
