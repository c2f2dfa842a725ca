"""``python -m bench.experiments`` (``make results``): train the README's experiments and write its results.

For each experiment (``dcgan_fmnist``, the default run; ``cyclegan_fmnist``; ``pix2pix_fmnist``; ``biggan_fmnist``) it

1. trains ``python -m ganzoo.train experiment=<name>`` in a subprocess, in ``<runs dir>/<name>`` (a fresh
   directory: an earlier run there is removed first), and times it;
2. for the experiments whose README text quotes it, runs ``python -m ganzoo.evaluate ckpt=<run>/checkpoints/
   last.ckpt`` and records what it reports (the reproduction of the logged value from the checkpoint alone);
3. reads the run's ``csv/metrics.csv``: the evaluation rows (those with ``val/*`` values, merged per step),
   the evaluator classifier's measured test accuracy (``evaluator/accuracy_<name>``) and the training losses
   the text quotes;
4. copies the run's sheets (``samples/last.png``, ``translations/last.png``, ``class_sheets/last.png``,
   ``interp_class/last.png``) into ``<docs dir>/images/``, enlarged with nearest-neighbour sampling;
5. writes the markdown (tables of metric rows x iteration columns, captions, the commit, the machine and the
   wall time) into the README between ``<!-- results:<name>:begin -->`` and ``<!-- results:<name>:end -->``,
   and the evaluator's accuracy between ``<!-- results:evaluator:begin/end -->``;
6. writes ``<docs dir>/results.json`` with the raw values. Experiments not run this time keep their entries.

``--smoke`` runs every experiment with ``debug=smoke`` (3 iterations, tiny evaluations) into a temporary
directory, and writes a copy of the README there instead of the real one: the whole pipeline in seconds,
what ``tests/test_results_command.py`` runs. Its numbers mean nothing.

Examples::

    python -m bench.experiments                           # = make results: every experiment, about 25 min on 2 CPU cores
    python -m bench.experiments --only biggan_fmnist      # = make results ARGS="--only biggan_fmnist"
    python -m bench.experiments --skip-train              # rebuild the README and images from the existing runs
    python -m bench.experiments --smoke                   # the pipeline in seconds, README copy in a temp dir
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import REPO
from bench.machine import cpu_name, git_commit

#: Generated and real images of the Inception FID of each Fashion-MNIST run (CPU Inception costs about 0.1 s per
#: image on 2 cores: a few minutes per run, where the papers' 50,000 would take hours).
INCEPTION_SAMPLES = 500
INCEPTION_REAL = 1000

#: Overrides of ``--smoke``: a few iterations with every output, on the CPU.
SMOKE_OVERRIDES = ("debug=smoke", "trainer.accelerator=cpu")


@dataclass(frozen=True)
class Row:
    """One table row: a logged key and how the README labels it."""

    key: str
    label: str


@dataclass(frozen=True)
class Sheet:
    """An image sheet of a run (``<run dir>/<source>``), copied to ``docs/images/<target>`` enlarged ``scale``x."""

    source: str
    target: str
    scale: int
    caption: str


@dataclass(frozen=True)
class Experiment:
    """A README experiment: how it is trained and what of it the README shows."""

    name: str
    title: str
    rows: tuple[Row, ...]
    sheets: tuple[Sheet, ...]
    #: The metric ``ganzoo.evaluate`` reproduces from ``last.ckpt`` (None: evaluate is not run).
    evaluate_key: str | None = None
    #: Sums of training losses whose first and last logged values the text quotes.
    loss_sums: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: The experiment config (default: ``name``) and overrides on top of it, for runs that differ from it in one
    #: setting (a :class:`Comparison`'s members).
    config: str = ""
    overrides: tuple[str, ...] = ()
    #: Generated images of an Inception FID of ``last.ckpt`` against the 10,000 test images (0: none), by
    #: ``python -m ganzoo.evaluate ... metrics=inception`` (:data:`INCEPTION_OVERRIDES`).
    inception_samples: int = 0
    #: Whether the README has a block of its own for this run (a comparison's members are shown by it).
    own_block: bool = True

    def train_overrides(self) -> list[str]:
        return [f"experiment={self.config or self.name}", *self.overrides]


@dataclass(frozen=True)
class Comparison:
    """README runs that differ in one setting, side by side: their values at the last evaluation (one column per
    run), one metric across every evaluation (one row per run), and their sheets."""

    name: str
    title: str
    members: tuple[str, ...]
    labels: tuple[str, ...]
    rows: tuple[Row, ...]
    curve: Row
    caption: str


#: The Inception evaluation of a README run: TF Inception weights (offline from ganzoo[inception-offline] where
#: torch-fidelity's file is absent), FID and precision/recall/density/coverage against the first test images.
INCEPTION_OVERRIDES = (
    "metrics=inception",
    "metrics.evaluation.metrics=[fid,prdc]",
    "real_split=val",
    f"metrics.evaluation.num_real={INCEPTION_REAL}",
)


#: Precision/recall (k = 3) and density/coverage (k = 5) in the evaluator's features.
PRDC_ROWS = (
    Row("val/precision_fmnist", "`val/precision_fmnist`"),
    Row("val/recall_fmnist", "`val/recall_fmnist`"),
    Row("val/density_fmnist", "`val/density_fmnist`"),
    Row("val/coverage_fmnist", "`val/coverage_fmnist`"),
)

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            name="dcgan_fmnist",
            title="**The default run** (`make train` = `python -m ganzoo.train experiment=dcgan_fmnist`: DCGAN, "
            "Fashion-MNIST 32x32, batch 64, 1500 iterations; 5,000 samples per evaluation)",
            rows=(
                Row("val/fid_fmnist", "`val/fid_fmnist`"),
                Row("val/kid_fmnist", "`val/kid_fmnist`"),
                Row("val/is_fmnist", "`val/is_fmnist` (max 10)"),
                Row("val/class_coverage_fmnist", "`val/class_coverage_fmnist`"),
                *PRDC_ROWS,
            ),
            sheets=(
                Sheet(
                    "samples/last.png",
                    "dcgan_fmnist_default.png",
                    2,
                    "`samples/last.png` of that run (enlarged 2x): the fixed latent batch that `SampleGrid` draws at "
                    "every interval.",
                ),
            ),
            evaluate_key="val/fid_fmnist",
            inception_samples=INCEPTION_SAMPLES,
        ),
        Experiment(
            name="cyclegan_fmnist",
            title="**CycleGAN turns sneakers into ankle boots** (`python -m ganzoo.train experiment=cyclegan_fmnist`: "
            "6 epochs of batch 16, 4 at lr 2e-4, then 2 of linear decay). The values are for A -> B translations of the test sneakers against the test "
            "ankle boots",
            rows=(
                Row("val/class_accuracy_fmnist", "`val/class_accuracy_fmnist` (share called ankle boots)"),
                Row("val/fid_fmnist", "`val/fid_fmnist` to the test boots"),
                *PRDC_ROWS,
            ),
            sheets=(
                Sheet(
                    "translations/last.png",
                    "cyclegan_fmnist.png",
                    3,
                    "Each row, for fixed test images: real sneaker | translated to a boot | translated back | real "
                    "ankle boot | translated to a sneaker | translated back (`translations/last.png` of that run, "
                    "enlarged 3x).",
                ),
            ),
            evaluate_key="val/fid_fmnist",
            loss_sums=(("train/loss_cycle_a", "train/loss_cycle_b"),),
            inception_samples=INCEPTION_SAMPLES,
        ),
        Experiment(
            name="pix2pix_fmnist",
            title="**pix2pix draws the item behind an edge map** (`python -m ganzoo.train experiment=pix2pix_fmnist`: "
            "U-Net of 5 levels, batch 32, 6 epochs of 250 iterations, 3 at lr 2e-4, then 3 of linear decay). Values "
            "for the 1,000 first test pairs: each output against its own target (L1 and PSNR on intensities in "
            "[0, 1]), the evaluator's share of outputs in the class of the item the edges came from, and FID to the "
            "test items",
            rows=(
                Row("val/l1", "`val/l1` (0: identical)"),
                Row("val/psnr", "`val/psnr` (dB)"),
                Row("val/ssim", "`val/ssim` (max 1)"),
                Row("val/class_accuracy_fmnist", "`val/class_accuracy_fmnist` (share in the source's class)"),
                Row("val/fid_fmnist", "`val/fid_fmnist` to the test items"),
                *PRDC_ROWS,
            ),
            sheets=(
                Sheet(
                    "translations/last.png",
                    "pix2pix_fmnist.png",
                    3,
                    "Each row, for a fixed test pair: the edge map (input) | pix2pix's output | the item the edges "
                    "were computed from (target) (`translations/last.png` of that run, enlarged 3x).",
                ),
            ),
            evaluate_key="val/psnr",
            inception_samples=INCEPTION_SAMPLES,
        ),
        Experiment(
            name="biggan_fmnist",
            title="**BigGAN draws the class it is asked for** (`python -m ganzoo.train experiment=biggan_fmnist`: "
            "ch 16, 2 D steps of batch 32, lr 5e-4, EMA 0.99 from iteration 250, 1000 iterations). Values for 2,000 "
            "EMA samples, 200 per class; `val/class_accuracy_fmnist` is the share the evaluator assigns to the class "
            "they were generated for (chance: 0.10)",
            rows=(
                Row("val/class_accuracy_fmnist", "`val/class_accuracy_fmnist`"),
                Row("val/fid_fmnist", "`val/fid_fmnist`"),
                Row("val/is_fmnist", "`val/is_fmnist` (max 10)"),
                Row("val/class_entropy_fmnist", "`val/class_entropy_fmnist`"),
                *PRDC_ROWS,
            ),
            sheets=(
                Sheet(
                    "class_sheets/last.png",
                    "biggan_fmnist.png",
                    2,
                    "`class_sheets/last.png` of that run (enlarged 2x): row k is class k (T-shirt, trouser, pullover, "
                    "dress, coat, sandal, shirt, sneaker, bag, ankle boot), every row from the same 8 latents.",
                ),
                Sheet(
                    "interp_class/last.png",
                    "biggan_fmnist_interp_class.png",
                    2,
                    "`interp_class/last.png` of that run (enlarged 2x): each row holds the latent fixed and walks "
                    "linearly between two classes' embeddings.",
                ),
            ),
            inception_samples=INCEPTION_SAMPLES,
        ),
        *(
            Experiment(
                name=f"dcgan_fmnist_10pct{suffix}",
                title=f"DCGAN on 10 % of Fashion-MNIST, model.augment={augment}",
                rows=(),
                sheets=(Sheet("samples/last.png", f"dcgan_fmnist_10pct{suffix}.png", 2, f"model.augment={augment}"),),
                config="dcgan_fmnist_10pct",
                overrides=(f"model.augment={augment}",),
                own_block=False,
            )
            for augment, suffix in (("none", ""), ("diffaug", "_diffaug"), ("ada", "_ada"))
        ),
    )
}

COMPARISONS: dict[str, Comparison] = {
    c.name: c
    for c in (
        Comparison(
            name="data_efficiency",
            title="**DiffAugment and ADA on 10 % of Fashion-MNIST** (`python -m ganzoo.train experiment=dcgan_fmnist_10pct "
            "model.augment=none|diffaug|ada`: a DCGAN of 32 base channels on a fixed 6,000 of the 60,000 training "
            "images, `data.train_fraction=0.1`, 12,000 iterations of batch 64, the same seed for the three; evaluated "
            "on the whole test split, 5,000 samples per evaluation)",
            members=("dcgan_fmnist_10pct", "dcgan_fmnist_10pct_diffaug", "dcgan_fmnist_10pct_ada"),
            labels=("no augmentation", "DiffAugment", "ADA"),
            rows=(
                Row("val/fid_fmnist", "`val/fid_fmnist`"),
                Row("val/kid_fmnist", "`val/kid_fmnist`"),
                Row("val/is_fmnist", "`val/is_fmnist` (max 10)"),
                *PRDC_ROWS,
            ),
            curve=Row("val/fid_fmnist", "`val/fid_fmnist`"),
            caption="`samples/last.png` of each run (enlarged 2x), from the same latents: no augmentation | DiffAugment "
            "| ADA.",
        ),
    )
}

EVALUATOR_KEY_PREFIX = "evaluator/accuracy_"


# --------------------------------------------------------------------------------------------------- reading runs
def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a Lightning CSV log (``csv/metrics.csv``) as dicts of non-empty string values."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in csv.DictReader(f)]


def _step(row: dict[str, str]) -> int | None:
    # The step column is an int, but a logger may write it as a float ("250.0").
    try:
        return int(float(row["step"]))
    except (KeyError, ValueError):
        return None


def evaluations(rows: Sequence[dict[str, str]], prefix: str = "val/") -> dict[int, dict[str, float]]:
    """``{step: {key: value}}`` of every evaluation: rows with ``prefix`` values, merged per step (a later row of
    the same step wins, as after a resume)."""
    out: dict[int, dict[str, float]] = {}
    for row in rows:
        step = _step(row)
        values = {k: float(v) for k, v in row.items() if k.startswith(prefix)}
        if step is not None and values:
            out.setdefault(step, {}).update(values)
    return dict(sorted(out.items()))


def evaluator_accuracy(rows: Sequence[dict[str, str]]) -> tuple[str, float] | None:
    """(key, value) of the evaluator classifier's measured accuracy on the val (= test) split, if logged."""
    for row in rows:
        for key, value in row.items():
            if key.startswith(EVALUATOR_KEY_PREFIX):
                return key, float(value)
    return None


def loss_series(rows: Sequence[dict[str, str]], keys: Sequence[str]) -> list[tuple[int, float]]:
    """(step, sum of ``keys``) for every row that logs all of them."""
    series = []
    for row in rows:
        step = _step(row)
        if step is not None and all(k in row for k in keys):
            series.append((step, sum(float(row[k]) for k in keys)))
    return series


# ------------------------------------------------------------------------------------------------------ formatting
def fmt(value: float) -> str:
    """Three significant digits, at least one decimal: 631.7, 82.8, 8.89, 0.994."""
    size = abs(value)
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def column_labels(steps: Sequence[int]) -> list[str]:
    """``0 (untrained)``, the interval steps, and ``N (end)`` when the last step is off the interval."""
    labels = []
    interval = steps[1] - steps[0] if len(steps) > 1 else 0
    for i, step in enumerate(steps):
        if step == 0:
            labels.append("0 (untrained)")
        elif i == len(steps) - 1 and interval and step % interval:
            labels.append(f"{step:,} (end)")
        else:
            labels.append(f"{step:,}")
    return labels


def markdown_table(evals: dict[int, dict[str, float]], rows: Sequence[Row]) -> str:
    """Metric rows x iteration columns; a value an evaluation did not log is ``-``."""
    steps = list(evals)
    lines = [
        "| iteration | " + " | ".join(column_labels(steps)) + " |",
        "| --- |" + " --- |" * len(steps),
    ]
    for row in rows:
        cells = [fmt(evals[s][row.key]) if row.key in evals[s] else "-" for s in steps]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s" if seconds >= 60 else f"{seconds:.0f} s"


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu']}, {machine['cpu_count']} CPU cores ({machine['torch_threads']} torch threads), "
        f"device {machine['device']}, torch {machine['torch']}, lightning {machine['lightning']}"
    )


def experiment_markdown(exp: Experiment, result: dict[str, Any], image_prefix: str) -> str:
    """The README block of one experiment from its ``results.json`` entry."""
    evals = {int(k): v for k, v in result["evaluations"].items()}
    commit = result["commit"] + (" with uncommitted changes" if result["dirty"] else "")
    wall_s = result.get("wall_s")
    wall = f"{minutes(wall_s)} wall time for training and its evaluations" if wall_s else "wall time not measured"
    parts = [
        f"{exp.title}; {wall} on {machine_line(result['machine'])}; commit {commit}"
        + (", smoke settings: the numbers mean nothing" if result.get("smoke") else "")
        + ":",
        markdown_table(evals, exp.rows),
    ]
    extra = []
    best = result.get("best")
    if best:
        extra.append(
            f"`checkpoints/best.ckpt` is the iteration-{best['step']:,} generator "
            f"(`{best['key']}` {fmt(best['value'])})."
        )
    for keys, series in zip(exp.loss_sums, result.get("losses", []), strict=False):
        if len(series) >= 2:
            (s0, v0), (s1, v1) = series[0], series[-1]
            names = " + ".join(f"`{k}`" for k in keys)
            extra.append(f"{names} goes from {v0:.2f} (iteration {s0:,}) to {v1:.2f} (iteration {s1:,}).")
    reproduced = result.get("evaluate")
    if reproduced:
        extra.append(
            f"`python -m ganzoo.evaluate ckpt=<run>/checkpoints/last.ckpt` prints "
            f"`{reproduced['key']} = {reproduced['value']:.6g}`; the run logged {reproduced['logged']:.6g} at "
            f"iteration {reproduced['step']:,}."
        )
    if result.get("inception"):
        extra.append(inception_markdown(result["inception"]))
    if extra:
        parts.append(" ".join(extra))
    for sheet in exp.sheets:
        parts.append(f"![{exp.name}: {sheet.source}]({image_prefix}{sheet.target})\n\n*{sheet.caption}*")
    return "\n\n".join(parts)


def comparison_markdown(comparison: Comparison, results: dict[str, Any], image_prefix: str) -> str:
    """The README block of a :class:`Comparison` from its members' ``results.json`` entries."""
    members = [results[name] for name in comparison.members]
    finals = [{int(k): v for k, v in m["evaluations"].items()} for m in members]
    last = [max(evals) for evals in finals]
    commits = sorted({m["commit"] + (" with uncommitted changes" if m["dirty"] else "") for m in members})
    walls = ", ".join(minutes(m["wall_s"]) for m in members if m.get("wall_s"))
    smoke = ", smoke settings: the numbers mean nothing" if any(m.get("smoke") for m in members) else ""
    header = (
        f"{comparison.title}; wall times {walls or 'not measured'} on {machine_line(members[0]['machine'])}; "
        f"commit {', '.join(commits)}{smoke}:"
    )
    columns = [f"{label} (iteration {step:,})" for label, step in zip(comparison.labels, last, strict=True)]
    table = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for row in comparison.rows:
        cells = [fmt(e[s][row.key]) if row.key in e[s] else "-" for e, s in zip(finals, last, strict=True)]
        table.append(f"| {row.label} | " + " | ".join(cells) + " |")
    steps = sorted(set().union(*finals))
    curve = [
        f"| {comparison.curve.label} at iteration | " + " | ".join(column_labels(steps)) + " |",
        "| --- |" + " --- |" * len(steps),
    ]
    for label, evals in zip(comparison.labels, finals, strict=True):
        cells = [
            fmt(evals[s][comparison.curve.key]) if comparison.curve.key in evals.get(s, {}) else "-" for s in steps
        ]
        curve.append(f"| {label} | " + " | ".join(cells) + " |")
    best = []
    for label, evals in zip(comparison.labels, finals, strict=True):
        top = best_step(evals, comparison.curve.key)
        if top:
            best.append(f"{label} {fmt(top['value'])} (iteration {top['step']:,})")
    sheets = " ".join(f"![{name}]({image_prefix}{EXPERIMENTS[name].sheets[0].target})" for name in comparison.members)
    parts = [header, "\n".join(table), "\n".join(curve)]
    if best:
        parts.append(f"Best {comparison.curve.label}: " + "; ".join(best) + ".")
    parts.append(f"{sheets}\n\n*{comparison.caption}*")
    return "\n\n".join(parts)


#: The README block of precision/recall/density/coverage on real image sets: the whole distribution, and a
#: stand-in for a generator collapsed onto one class.
REFERENCE = "prdc_reference"
REFERENCE_SETS = (("5,000 training images, all classes", None), ("5,000 training images of one class (sneakers)", 7))
REFERENCE_ROWS = (Row("val/fid_fmnist", "`val/fid_fmnist`"), *PRDC_ROWS)


def prdc_reference(runs_dir: Path, smoke: bool, reuse: bool = False) -> dict[str, Any]:
    """``python -m ganzoo.evaluate images=<npz> data=fashion_mnist`` of :data:`REFERENCE_SETS`: the metrics of real
    training images against the test split, for all classes and for one (``reuse``: the reports an earlier run of
    this left in ``runs_dir``)."""
    out_dir = runs_dir / REFERENCE
    record = out_dir / "reference.json"
    if reuse and record.is_file():
        return json.loads(record.read_text())
    import numpy as np
    import torch

    from ganzoo.data.fashion_mnist import FashionMNISTDataModule
    from ganzoo.images import to_uint8

    data = FashionMNISTDataModule(data_dir=str(REPO / "data"), image_size=32)
    train = data.eval_dataset("train")
    labels = torch.as_tensor([int(train[i][1]) for i in range(len(train))])
    count = 64 if smoke else 5000
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = []
    for label, class_id in REFERENCE_SETS:
        chosen = (labels == class_id).nonzero().flatten() if class_id is not None else torch.arange(len(labels))
        images = torch.stack([train[int(i)][0] for i in chosen[:count]])
        npz = out_dir / f"images_{'all' if class_id is None else class_id}.npz"
        np.savez(npz, x=to_uint8(images).numpy())
        report_path = npz.with_suffix(".json")
        args = [f"images={npz}", "data=fashion_mnist", "metrics=classifier", "real_split=val", f"out={report_path}"]
        run_module("ganzoo.evaluate", args, npz.with_suffix(".log"))
        sets.append({"label": label, "metrics": json.loads(report_path.read_text())["metrics"]})
    commit, dirty = git_commit(short=True, ignore=OWN_OUTPUTS) or ("unknown", True)
    entry = {"sets": sets, "commit": commit, "dirty": dirty, "smoke": smoke}
    record.write_text(json.dumps(entry, indent=2) + "\n")
    return entry


def reference_markdown(entry: dict[str, Any]) -> str:
    """The README block of :func:`prdc_reference`."""
    commit = entry["commit"] + (" with uncommitted changes" if entry["dirty"] else "")
    labels = [s["label"] for s in entry["sets"]]
    lines = ["| metric | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    for row in REFERENCE_ROWS:
        cells = [fmt(s["metrics"][row.key]) if row.key in s["metrics"] else "-" for s in entry["sets"]]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    smoke = ", smoke settings: the numbers mean nothing" if entry.get("smoke") else ""
    return (
        "**What the four numbers say about a collapsed generator**: real training images scored as samples against "
        "the test split (`python -m ganzoo.evaluate images=<npz> data=fashion_mnist`), all ten classes and one "
        f"class only; commit {commit}{smoke}:\n\n" + "\n".join(lines)
    )


def evaluator_markdown(results: dict[str, Any]) -> str | None:
    """One sentence with the evaluator classifier's measured test accuracy, from the newest run that logged it."""
    for name in EXPERIMENTS:
        entry = results.get(name, {}).get("evaluator")
        if entry:
            note = " (smoke settings: the number means nothing)" if results[name].get("smoke") else ""
            return (
                f"The Fashion-MNIST evaluator classifier's accuracy on the 10,000 test images is "
                f"**{100 * entry['value']:.1f}%** (`{entry['key']}` in `csv/metrics.csv`, measured when it was "
                f"trained for the `{name}` run of `make results`){note}."
            )
    return None


def replace_between_markers(text: str, name: str, body: str) -> str:
    """``text`` with what lies between ``<!-- results:<name>:begin -->`` and ``...:end -->`` replaced by ``body``."""
    begin, end = f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"error: the README has no {begin} ... {end} markers: add them where the results go")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)


# ---------------------------------------------------------------------------------------------------- the machine
#: What this command itself writes into the work tree: not counted as uncommitted changes of the code it runs.
OWN_OUTPUTS = ("README.md", "docs/images", "docs/results.json")


def machine(smoke: bool) -> dict[str, Any]:
    import lightning
    import torch

    # The runs use trainer.accelerator=auto (the first GPU when there is one); --smoke forces the CPU.
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() and not smoke else "cpu"
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------------------------------------------ running
def run_module(module: str, args: Sequence[str], log_path: Path) -> float:
    """Run ``python -m <module> <args>`` from the repository root, output to ``log_path``; wall seconds."""
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-15:]
        raise SystemExit(
            f"error: {module} {' '.join(args)} failed ({proc.returncode}); log {log_path}:\n" + "\n".join(tail)
        )
    return elapsed


def enlarge(source: Path, target: Path, scale: int) -> None:
    """Copy a PNG sheet ``scale`` times larger with nearest-neighbour sampling (pixels stay sharp squares)."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST).save(target)


def best_step(evals: dict[int, dict[str, float]], key: str) -> dict[str, Any] | None:
    """The trained evaluation with the lowest ``key`` (what ``best.ckpt`` keeps for a ``min`` monitor)."""
    scores = [(v[key], s) for s, v in evals.items() if s > 0 and key in v]
    if not scores:
        return None
    value, step = min(scores)
    return {"key": key, "step": step, "value": value}


def run_experiment(
    exp: Experiment, run_dir: Path, overrides: Sequence[str], train: bool, smoke: bool
) -> dict[str, Any]:
    """Train (unless ``train`` is False: read an existing run), evaluate and collect one experiment's results."""
    # The code a run was trained with: recorded in the run dir, so --skip-train reports that, not today's HEAD.
    code_file = run_dir / "results_commit.json"
    # The short hash, and whether the code differs from it (this command's own outputs not counted).
    commit, dirty = git_commit(short=True, ignore=OWN_OUTPUTS) or ("unknown", True)
    wall_s = None
    trained_on = None  # the machine of a run another invocation trained, as it recorded it
    if train:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        code_file.write_text(json.dumps({"commit": commit, "dirty": dirty}) + "\n")
        args = [*exp.train_overrides(), *overrides, f"hydra.run.dir={run_dir}"]
        print(f"{exp.name}: python -m ganzoo.train {' '.join(args)}", flush=True)
        wall_s = run_module("ganzoo.train", args, run_dir / "results_train.log")
        print(f"{exp.name}: trained in {minutes(wall_s)}", flush=True)
        # The wall time goes with the run, so --skip-train reports it for runs trained by another invocation.
        record = {"commit": commit, "dirty": dirty, "wall_s": round(wall_s, 1), "machine": machine(smoke)}
        code_file.write_text(json.dumps(record) + "\n")
    elif code_file.is_file():
        recorded = json.loads(code_file.read_text())
        commit, dirty, wall_s = recorded["commit"], recorded["dirty"], recorded.get("wall_s")
        trained_on = recorded.get("machine")
    metrics_csv = run_dir / "csv" / "metrics.csv"
    if not metrics_csv.is_file():
        raise SystemExit(f"error: {metrics_csv} does not exist: train the experiment first (drop --skip-train)")
    rows = read_metrics(metrics_csv)
    evals = evaluations(rows)
    if not evals:
        raise SystemExit(f"error: {metrics_csv} holds no val/* values: the run evaluated nothing")
    result: dict[str, Any] = {
        "experiment": exp.name,
        "command": "python -m ganzoo.train " + " ".join([*exp.train_overrides(), *overrides]),
        "run_dir": str(run_dir),
        "commit": commit,
        "dirty": dirty,
        "machine": trained_on or machine(smoke),
        "smoke": smoke,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "evaluations": {str(s): v for s, v in evals.items()},
    }
    if wall_s is not None:
        result["wall_s"] = round(wall_s, 1)
    accuracy = evaluator_accuracy(rows)
    if accuracy:
        result["evaluator"] = {"key": accuracy[0], "value": accuracy[1]}
    fid_keys = [k for k in next(iter(evals.values())) if k.startswith("val/fid_")]
    if fid_keys:
        result["best"] = best_step(evals, fid_keys[0])
    result["losses"] = [loss_series(rows, keys) for keys in exp.loss_sums]
    result["losses"] = [[series[0], series[-1]] if series else [] for series in result["losses"]]
    if exp.evaluate_key:
        report_path = run_dir / "evaluate_last.json"
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if train or not report_path.is_file():  # --skip-train reuses the run's own report
            run_module("ganzoo.evaluate", [f"ckpt={ckpt}", f"out={report_path}"], run_dir / "results_evaluate.log")
        report = json.loads(report_path.read_text())
        last_step = max(evals)
        result["evaluate"] = {
            "key": exp.evaluate_key,
            "value": float(report["metrics"][exp.evaluate_key]),
            "logged": evals[last_step][exp.evaluate_key],
            "step": last_step,
        }
    if exp.inception_samples:
        result["inception"] = inception_evaluation(exp, run_dir, smoke, reuse=not train)
    return result


def inception_evaluation(exp: Experiment, run_dir: Path, smoke: bool, reuse: bool = False) -> dict[str, Any]:
    """``python -m ganzoo.evaluate`` of ``last.ckpt`` with the Inception extractor (:data:`INCEPTION_OVERRIDES`): its
    values and protocol (the weights' digest, the resize, the numbers of images). ``reuse``: read the report an
    earlier evaluation of this run left, if there is one."""
    report_path = run_dir / "evaluate_inception.json"
    samples = 16 if smoke else exp.inception_samples
    args = [f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", *INCEPTION_OVERRIDES, f"num_samples={samples}"]
    if smoke:
        args += ["batch_size=8", "metrics.evaluation.num_real=16"]
    if not (reuse and report_path.is_file()):
        run_module("ganzoo.evaluate", [*args, f"out={report_path}"], run_dir / "results_inception.log")
    report = json.loads(report_path.read_text())
    return {
        "command": "python -m ganzoo.evaluate ckpt=<run>/checkpoints/last.ckpt " + " ".join(args[1:]),
        "metrics": report["metrics"],
        "protocol": report.get("protocol", {}),
    }


def inception_markdown(entry: dict[str, Any]) -> str:
    """One sentence with a run's Inception FID and precision/recall/density/coverage, and how they were measured."""
    metrics, protocol = entry["metrics"], entry.get("protocol", {})
    values = [f"**Inception FID {fmt(metrics['val/fid_inception'])}**"] if "val/fid_inception" in metrics else []
    for name in ("precision", "recall", "density", "coverage"):
        if f"val/{name}_inception" in metrics:
            values.append(f"{name} {fmt(metrics[f'val/{name}_inception'])}")
    generated, real = protocol.get("num_generated"), protocol.get("num_real")
    counts = (
        f"{generated:,} generated images against the first {real:,} test images"
        if generated and real
        else "the test split"
    )
    return (
        f"In Inception features (TF Inception 2015-12-05, `{protocol.get('extractor_identity', 'inception')}`; "
        f"{counts}; `{entry['command']}`): {', '.join(values)}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.experiments",
        description="Train the README's experiments and write their tables and sheets into the README (make results).",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*EXPERIMENTS, *COMPARISONS, REFERENCE],
        help="run only these experiments (or comparisons, or the precision/recall reference)",
    )
    parser.add_argument("--smoke", action="store_true", help="debug=smoke runs into a temp dir; README copy there")
    parser.add_argument("--skip-train", action="store_true", help="rebuild from the existing runs in --runs-dir")
    parser.add_argument("--runs-dir", type=Path, help="where the runs go (default outputs/results; smoke: temp)")
    parser.add_argument("--readme", type=Path, help="the README to update (default README.md; smoke: a copy)")
    parser.add_argument("--docs-dir", type=Path, help="images/ and results.json go here (default docs; smoke: temp)")
    parser.add_argument("--override", action="append", default=[], help="a Hydra override for every run (repeatable)")
    args = parser.parse_args(argv)

    names: list[str] = []
    for name in args.only or [*EXPERIMENTS, REFERENCE]:
        names.extend(COMPARISONS[name].members if name in COMPARISONS else [name])
    reference = REFERENCE in names
    names = [name for name in names if name != REFERENCE]
    if args.smoke:
        base = Path(tempfile.mkdtemp(prefix="ganzoo-results-smoke-"))
        runs_dir = args.runs_dir or base / "runs"
        docs_dir = args.docs_dir or base / "docs"
        readme = args.readme or base / "README.md"
        if not readme.exists():
            readme.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / "README.md", readme)
    else:
        runs_dir = args.runs_dir or REPO / "outputs" / "results"
        docs_dir = args.docs_dir or REPO / "docs"
        readme = args.readme or REPO / "README.md"
    overrides = [*(SMOKE_OVERRIDES if args.smoke else ()), *args.override]
    runs_dir, docs_dir, readme = runs_dir.resolve(), docs_dir.resolve(), readme.resolve()

    results_path = docs_dir / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    total = time.monotonic()
    for name in names:
        exp = EXPERIMENTS[name]
        run_dir = runs_dir / name
        result = run_experiment(exp, run_dir, overrides, train=not args.skip_train, smoke=args.smoke)
        if "wall_s" not in result and name in results:  # a run trained before runs recorded their wall time
            result["wall_s"] = results[name].get("wall_s")
        for sheet in exp.sheets:
            source = run_dir / sheet.source
            if not source.is_file():
                raise SystemExit(f"error: {source} does not exist: the run wrote no {sheet.source}")
            enlarge(source, docs_dir / "images" / sheet.target, sheet.scale)
        results[name] = result

    if reference:
        results[REFERENCE] = prdc_reference(runs_dir, args.smoke, reuse=args.skip_train)

    docs_dir.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    image_prefix = os.path.relpath(docs_dir / "images", readme.parent).replace(os.sep, "/") + "/"
    text = readme.read_text()
    for name in names:
        if EXPERIMENTS[name].own_block:
            text = replace_between_markers(
                text, name, experiment_markdown(EXPERIMENTS[name], results[name], image_prefix)
            )
    for comparison in COMPARISONS.values():
        if set(comparison.members) & set(names) and all(member in results for member in comparison.members):
            text = replace_between_markers(
                text, comparison.name, comparison_markdown(comparison, results, image_prefix)
            )
    if reference and REFERENCE in results:
        text = replace_between_markers(text, REFERENCE, reference_markdown(results[REFERENCE]))
    evaluator = evaluator_markdown(results)
    if evaluator:
        text = replace_between_markers(text, "evaluator", evaluator)
    readme.write_text(text)
    print(f"wrote {readme}, {results_path} and {docs_dir / 'images'} in {minutes(time.monotonic() - total)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
