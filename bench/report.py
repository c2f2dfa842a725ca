"""What the benches write: the summaries of repeated measurements, the tables of ``bench/results/<device>.md``,
merging with an earlier results file, and writing a results pair (``.json`` and ``.md``).

:func:`summarise` turns a plan's runs into a training entry: each side's medians over the repeats, the ratios
to plain (images/s) and the differences (ms per iteration). :func:`markdown` renders a whole report: the
throughput table, the overhead table of the tiny configs (goal: full - plain <= :data:`GOAL_MS`), the profile
and the evaluation table.
"""

from __future__ import annotations

import datetime
import json
import re
import statistics
from pathlib import Path
from typing import Any

from bench.plans import CONFIGS, EXPERIMENTS, MODELS, OVERRIDES, SIDES, Plan

#: The goal for full - plain, milliseconds per iteration on the tiny networks.
GOAL_MS = 0.5

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


def method_notes(kind: str) -> list[str]:
    """The notes that say how a run on a ``kind`` device (``cpu``, ``cuda``) measured."""
    notes = [
        "images/s: real images per iteration (the loader batch; CycleGAN, pix2pix: image pairs) / seconds per "
        "iteration, timed from the start of the first timed iteration to the start of the iteration after the last "
        "one (so each iteration holds its callbacks and the next batch's fetch); median over the repeats. ratio = "
        "ganzoo median / plain median (>= 0.95 is the target). 'of median iterations' compares the median iteration "
        "times instead, which ignores the spikes other processes cause on a shared machine.",
        "Each measurement runs in its own process; the sides alternate (full, bare, plain first in turn).",
        "Memory: " + ("torch.cuda.max_memory_allocated during training." if kind == "cuda" else
                      "growth of the resident set from the start of training to its peak (VmHWM; ru_maxrss where "
                      "/proc is missing). The ganzoo processes also hold Lightning, loaded before training."),
        "Evaluation: the config's FID extractor on uint8 batches, alone and after generating (CycleGAN, "
        "pix2pix: translating) and quantising the images; one process, median batch time.",
    ]  # fmt: skip
    if kind == "cpu":
        notes.append(
            "CPU timings on a shared machine are noisy (see the load average and the per-repeat values); the real "
            "configs take seconds per iteration on a CPU, so they run few iterations and BigGAN's real config one repeat."
        )
    return notes


# ------------------------------------------------------------------------------------------------ numbers
def fmt(x: float | None, digits: int = 1) -> str:
    """``x`` with thousands separators and ``digits`` decimals; ``-`` for None."""
    return "-" if x is None else f"{x:,.{digits}f}"


def fmt_rate(x: float | None) -> str:
    """A throughput with 3-4 significant digits: 1,234.5, 12.35, 0.0412; ``-`` for None."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.1f}"
    return f"{x:.3g}" if x < 1 else f"{x:.2f}"


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


# ------------------------------------------------------------------------------------------------ tables
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
        ratio = fmt(e.get("ratio"), 3) if not errors else "error"
        per_repeat = ", ".join(f"{r:.2f}" for r in e.get("ratio_per_repeat", []))
        lines.append(
            f"| {e['model']} | {config_label(e)} | {e['variant']} | {e['images_per_iteration']} | "
            f"{fmt_rate(g.get('images_per_s_median'))} | {fmt_rate(b.get('images_per_s_median'))} | "
            f"{fmt_rate(p.get('images_per_s_median'))} | {ratio} | {fmt(e.get('ratio_bare'), 3)} | {per_repeat} | "
            f"{fmt(e.get('ratio_median_iteration'), 3)} | "
            f"{fmt(g.get(mem), 0)} / {fmt(b.get(mem), 0)} / {fmt(p.get(mem), 0)} | "
            f"({e['warmup']} + {e['measured']}) x {e['repeats']} |"
        )
    return lines


def overhead_markdown(entries: list[dict[str, Any]]) -> list[str]:
    """The overhead table: ms per iteration of each side on the tiny networks, and full - plain against the goal."""
    lines = [
        f"#### Overhead per iteration on tiny networks (host time; goal: full - plain <= {GOAL_MS} ms)",
        "",
        "| model | config | plain ms | full ms | bare ms | full - plain ms | goal met | bare - plain ms | "
        "full - plain per repeat | CPU ms plain / full / bare | median iteration ms plain / full / bare | threads | "
        "iterations (warm-up + timed) x repeats |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        sides = {side: e.get(side, {}) for side in SIDES}
        errors = [err for s in sides.values() for err in s.get("errors", [])]
        difference = e.get("overhead_ms")
        met = "-" if difference is None or errors else "yes" if difference <= GOAL_MS else "no"

        def runs_median(side: str, key: str, sides: dict[str, Any] = sides) -> float | None:
            values = [r[key] for r in sides[side].get("runs", []) if r.get(key) is not None]
            return sorted(values)[len(values) // 2] if values else None

        cpu = " / ".join(fmt(sides[s].get("cpu_ms_per_iteration_median"), 2) for s in ("plain", "full", "bare"))
        median_it = " / ".join(
            fmt(runs_median(s, "ms_per_iteration_median_iteration"), 2) for s in ("plain", "full", "bare")
        )
        threads = sorted({t for s in sides.values() for t in s.get("threads", [])})
        lines.append(
            f"| {e['model']} | {config_label(e)} | {fmt(sides['plain'].get('ms_per_iteration_median'), 2)} | "
            f"{fmt(sides['full'].get('ms_per_iteration_median'), 2)} | "
            f"{fmt(sides['bare'].get('ms_per_iteration_median'), 2)} | "
            f"{fmt(difference, 2)} | {met} | {fmt(e.get('overhead_ms_bare'), 2)} | "
            f"{', '.join(f'{d:.2f}' for d in e.get('overhead_ms_per_repeat', []))} | {cpu} | {median_it} | "
            f"{', '.join(map(str, threads)) or '-'} | ({e['warmup']} + {e['measured']}) x {e['repeats']} |"
        )
    lines += [
        "",
        "ms: wall time per iteration over the timed window (median over the repeats); CPU ms: the process's CPU "
        "time per iteration (less sensitive to other processes on a shared machine); median iteration: the median "
        "of the single iterations. The full stack's checkpoints and sample sheets at their intervals fall inside "
        "the window, as in a real run.",
    ]
    return lines


def profile_markdown(profile: dict[str, Any]) -> list[str]:
    """The profile's groups (:func:`bench.profiling.profile_groups`) as a table: ms per iteration (under
    cProfile) and share."""
    title = f"#### Where the time goes: {profile['model']} {config_label(profile)}, full stack under cProfile"
    if "error" in profile:
        return [title, "", f"error: {profile['error']}"]
    lines = [
        title,
        "",
        f"{profile['measured']} timed iterations after {profile.get('warmup', '?')} of warm-up; "
        f"{fmt(profile.get('ms_per_iteration_profiled'), 2)} ms per iteration under cProfile (which slows Python "
        "calls down: read the shares). Code without a group of its own (torch, the standard library) counts for its "
        "callers.",
        "",
        "| group | ms/iteration (profiled) | share |",
        "| --- | ---: | ---: |",
    ]
    for g in profile["groups"]:
        share = "-" if g["share"] is None else f"{100 * g['share']:.1f}%"
        lines.append(f"| {g['group']} | {fmt(g['ms_per_iteration'], 3)} | {share} |")
    return lines


def evaluation_markdown(entries: list[dict[str, Any]]) -> list[str]:
    """The evaluation table: the extractor's images/s alone and after generating."""
    lines = [
        "| model | config | extractor | images | features img/s | generate + features img/s |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    for e in entries:
        if "error" in e:
            lines.append(f"| {e['model']} | {e['config']} | error: {e['error']} | | | |")
            continue
        lines.append(
            f"| {e['model']} | {e['config']} | {e['extractor']} | {e['batch_size']} x {e['channels']}x"
            f"{e['image_size']}px | {fmt_rate(e['features_images_per_s'])} | "
            f"{fmt_rate(e['generate_and_features_images_per_s'])} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report's tables: throughput, overhead on tiny networks, its profile, and evaluation; then the notes."""
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
        lines += ["", *evaluation_markdown(report["evaluation"])]
    errors = [
        f"{e['model']} {e['config']} {e['variant']}: {err}"
        for e in report.get("training", [])
        for err in _side_errors(e)
    ]
    lines += ["", *[f"- {note}" for note in report["notes"]]]
    if errors:
        lines += ["", "Errors:", "", *[f"- {error}" for error in dict.fromkeys(errors)]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ files
def device_slug(machine: dict[str, Any]) -> str:
    """The results file's name for a machine description: ``cpu``, or ``cuda-<gpu name>``."""
    if "gpu" not in machine:
        return "cpu"
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", machine["gpu"].lower()).strip("-")


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


def write_results(path: Path, data: dict[str, Any], table: str, indent: int = 1) -> Path:
    """Write ``data`` as JSON to ``path`` and ``table`` beside it (``.md``), and print the table; the ``.md``
    path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent, default=str) + "\n")
    table_path = path.with_suffix(".md")
    table_path.write_text(table)
    print(table)
    return table_path
