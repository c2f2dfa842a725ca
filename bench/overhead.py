"""``python -m bench.overhead``: what ganzoo adds per iteration, on networks too small to hide it.

The ``tiny`` config of :mod:`bench.throughput` (part of ``make bench``): each model's CPU-sized experiment
with channel widths so small that the arithmetic is negligible (DCGAN ngf = ndf = 4 at 32 px, batch 4;
CycleGAN ngf = ndf = 4 on cyclegan_fmnist's 32 px, batch 2; BigGAN G_ch = D_ch = 4 on biggan_fmnist, loader
batch 4), one torch thread, 500 timed iterations after 50 of warm-up, three repeats. What is left per
iteration is host time: Python, Lightning, callbacks, kernel launches. It compares the full stack of
``python -m ganzoo.train`` (full), the module in a bare Trainer (bare) and the plain loop (plain) on the same
tiny networks and the same synthetic batches, each measurement in its own process, sides alternating,
medians over the repeats, and reports milliseconds per iteration and the difference full - plain against the
goal of at most 0.5 ms.

``--profile MODEL`` also runs MODEL's tiny config on the full stack once more under cProfile, over the timed
iterations only, and groups the time by where it is spent: Lightning's loop, ``self.log`` and the logger
connector, each callback class, the optimizer wrappers (LightningOptimizer, strategy, precision plugin), the
frozen-D context (``GANModule.frozen``), the model's own ``training_step`` work, and the networks and
optimizers (torch). cProfile slows Python calls down, so the groups' shares matter more than their
milliseconds.

Examples::

    python -m bench.overhead                              # = python -m bench.throughput --configs tiny --no-eval
    python -m bench.overhead --models dcgan --profile dcgan
    python -m bench.overhead --quick                      # smoke check: a few iterations
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

#: The goal for full - plain, milliseconds per iteration on the tiny networks.
GOAL_MS = 0.5

LOOP = "Lightning's loop (fit loop, hook dispatch, batch transfer)"
LOG = "self.log / log_dict, logger connector, loggers"
OPTIMIZER = "optimizer wrappers (LightningOptimizer, strategy, precision plugin)"
FROZEN = "frozen-D context (GANModule.frozen)"
MODEL = "model's own training_step work (ganzoo.models, Python)"
TORCH = "networks and optimizers (torch: forward, backward, Adam)"
DATA = "data loader (the in-memory synthetic batches)"
PLAIN = "plain loop's own Python (bench.plain_loops)"
OTHER = "other (outside the profiled frames)"
#: Groups whose torch calls count as the networks' and optimizers' work rather than the group's own.
_TORCH_OWNERS = {MODEL, OPTIMIZER, LOOP, PLAIN}

_LOG_FILES = (
    "/lightning/pytorch/trainer/connectors/logger_connector/",
    "/lightning/pytorch/loggers/",
    "/lightning/fabric/loggers/",
    "/ganzoo/loggers.py",
)
_OPTIMIZER_FILES = (
    "/lightning/pytorch/core/optimizer.py",
    "/lightning/pytorch/plugins/precision/",
    "/lightning/fabric/plugins/precision/",
)
_STRATEGY_FILES = ("/lightning/pytorch/strategies/", "/lightning/fabric/strategies/")


def _is_torch(key: tuple[str, int, str]) -> bool:
    """Code of torch (Python or C) or of the networks themselves."""
    filename, _, name = key
    path = filename.replace("\\", "/")
    if filename == "~":  # a C function: "<built-in method torch.conv2d>", "<method 'add_' of 'torch._C.TensorBase'...>"
        return "torch" in name
    return "/torch/" in path or "/ganzoo/nets/" in path or "/ganzoo/losses.py" in path


def classify(key: tuple[str, int, str], callback_code: dict[tuple[str, int, str], str]) -> str | None:
    """The group a function belongs to by itself, or None for code that counts for whoever calls it (torch,
    the standard library, helpers)."""
    if key in callback_code:
        return f"callback {callback_code[key]}"
    filename, _, name = key
    path = filename.replace("\\", "/")
    if filename == "~":
        return None
    if path.endswith("/ganzoo/models/base.py") and name == "frozen":
        return FROZEN
    if path.endswith("/ganzoo/models/base.py") and name == "discriminator_step":
        return OPTIMIZER
    if "/ganzoo/models/" in path:
        return MODEL
    if (filename, -1, "*") in callback_code:  # a helper in a callback's module
        return f"callback {callback_code[filename, -1, '*']}"
    if "/ganzoo/callbacks/" in path:
        return f"callback module {path.rsplit('/', 1)[-1]}"
    if any(part in path for part in _LOG_FILES):
        return LOG
    if path.endswith("/lightning/pytorch/core/module.py"):
        if name.startswith("log") or "__check" in name or "__to_tensor" in name:
            return LOG
        if name in ("manual_backward", "optimizers", "backward", "toggle_optimizer", "untoggle_optimizer"):
            return OPTIMIZER
        return LOOP
    if any(part in path for part in _OPTIMIZER_FILES):
        return OPTIMIZER
    if any(part in path for part in _STRATEGY_FILES):
        return OPTIMIZER if "optimizer" in name or "backward" in name else LOOP
    if "/torch/utils/data/" in path or (path.endswith("/bench/throughput.py") and name in ("__getitem__", "__len__")):
        return DATA
    if "/lightning/" in path:
        return LOOP
    if path.endswith("/bench/plain_loops.py"):
        return PLAIN
    return None


def profile_groups(
    profiler: cProfile.Profile, callback_code: dict[tuple[str, int, str], str], measured: int, top: int = 15
) -> dict[str, Any]:
    """Milliseconds per iteration by group over a profiled window of ``measured`` iterations.

    Each function's own time goes to its group (:func:`classify`). Code without a group of its own (torch,
    the standard library, rich, helpers) counts for the groups that call it, split in proportion to the
    time each caller spent in it (cProfile keeps caller -> callee times, not whole stacks); torch code called
    from the model, the optimizer wrappers or Lightning's loop is the networks' and optimizers' work. ``callback
    code`` names each callback method (:func:`bench.synthetic.callback_code`).
    """
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = {key: classify(key, callback_code) for key in stats}
    # Code without a group reaches a group through its callers. Recursion (a module's __call__ -> forward ->
    # a submodule's __call__) makes cycles among such code: each cycle counts as one piece of code whose callers
    # are the callers from outside it.
    neutral = [key for key in stats if own[key] is None]
    component = _cycles(neutral, lambda key: [c for c in stats[key][4] if c in stats and own[c] is None])
    members: dict[int, list[Any]] = defaultdict(list)
    for key, index in component.items():
        members[index].append(key)
    memo: dict[int, dict[str, float]] = {}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

    def owners(key: Any) -> dict[str, float]:
        if own[key] is not None:
            return {own[key]: 1.0}
        index = component[key]
        if index in memo:
            return memo[index]
        inside = set(members[index])
        weights: dict[Any, float] = defaultdict(float)
        for member in inside:
            for caller, (_, calls, _, cumtime) in stats[member][4].items():
                if caller in stats and caller not in inside:
                    weights[caller] += max(cumtime, 0.0) or 1e-9 * calls
        total = sum(weights.values())
        result: dict[str, float] = defaultdict(float)
        if total <= 0:
            result[OTHER] = 1.0
        for caller, weight in weights.items():
            for group, share in owners(caller).items():
                result[group] += share * weight / total
        memo[index] = dict(result)
        return memo[index]

    seconds: dict[str, float] = defaultdict(float)
    for key, (_, _, tottime, _, _) in stats.items():
        if tottime <= 0:
            continue
        torch_code = _is_torch(key)
        for group, share in owners(key).items():
            seconds[TORCH if torch_code and group in _TORCH_OWNERS else group] += tottime * share
    total = sum(seconds.values())
    groups = [
        {"group": group, "ms_per_iteration": 1000 * value / measured, "share": value / total if total else None}
        for group, value in sorted(seconds.items(), key=lambda kv: -kv[1])
    ]
    functions = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "measured": measured,
        "profiled_ms_per_iteration": 1000 * total / measured,
        "groups": groups,
        "top_functions": [
            {
                "function": f"{pstats.func_std_string(key)}",
                "group": own.get(key) or "(counts for its callers)",
                "calls_per_iteration": value[1] / measured,
                "own_ms_per_iteration": 1000 * value[2] / measured,
            }
            for key, value in functions
        ],
    }


def _cycles(nodes: list[Any], successors: Callable[[Any], list[Any]]) -> dict[Any, int]:
    """Strongly connected components (Tarjan's algorithm, iterative: call graphs are deep): node -> component."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on_stack: set[Any] = set()
    stack: list[Any] = []
    component: dict[Any, int] = {}
    counter = components = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(successors(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors(child))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = components
                    if member == node:
                        break
                components += 1
    return component


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def overhead_markdown(entries: list[dict[str, Any]]) -> list[str]:
    """The overhead table: ms per iteration of each side on the tiny networks, and full - plain against the goal."""
    from bench.throughput import SIDES, config_label

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

        cpu = " / ".join(_fmt(sides[s].get("cpu_ms_per_iteration_median")) for s in ("plain", "full", "bare"))
        median_it = " / ".join(
            _fmt(runs_median(s, "ms_per_iteration_median_iteration")) for s in ("plain", "full", "bare")
        )
        threads = sorted({t for s in sides.values() for t in s.get("threads", [])})
        lines.append(
            f"| {e['model']} | {config_label(e)} | {_fmt(sides['plain'].get('ms_per_iteration_median'))} | "
            f"{_fmt(sides['full'].get('ms_per_iteration_median'))} | {_fmt(sides['bare'].get('ms_per_iteration_median'))} | "
            f"{_fmt(difference)} | {met} | {_fmt(e.get('overhead_ms_bare'))} | "
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
    """The profile's groups as a table: ms per iteration (under cProfile) and share."""
    from bench.throughput import config_label

    title = f"#### Where the time goes: {profile['model']} {config_label(profile)}, full stack under cProfile"
    if "error" in profile:
        return [title, "", f"error: {profile['error']}"]
    lines = [
        title,
        "",
        f"{profile['measured']} timed iterations after {profile.get('warmup', '?')} of warm-up; "
        f"{_fmt(profile.get('ms_per_iteration_profiled'))} ms per iteration under cProfile (which slows Python calls "
        "down: read the shares). Code without a group of its own (torch, the standard library) counts for its callers.",
        "",
        "| group | ms/iteration (profiled) | share |",
        "| --- | ---: | ---: |",
    ]
    for g in profile["groups"]:
        share = "-" if g["share"] is None else f"{100 * g['share']:.1f}%"
        lines.append(f"| {g['group']} | {_fmt(g['ms_per_iteration'], 3)} | {share} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    from bench import throughput

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--configs" or a.startswith("--configs=") for a in argv):
        raise SystemExit("error: python -m bench.overhead runs the tiny config only: drop --configs")
    throughput.main(["--configs", "tiny", "--no-eval", *argv])


if __name__ == "__main__":
    main()
