"""Where a profiled window's time goes: cProfile's functions grouped by who they work for.

The groups: Lightning's loop, ``self.log`` and the logger connector, each callback class, the optimizer wrappers
(LightningOptimizer, strategy, precision plugin), the frozen-D context (``GANModule.frozen``), the model's own
``training_step`` work, the networks and optimizers (torch), the data loader, and the plain loop's own Python.
cProfile slows Python calls down, so the groups' shares matter more than their milliseconds.

This module loads neither Lightning nor ganzoo at import (:func:`callback_code_owners` reads Lightning's ``Callback``
when it is called, in a process that runs Lightning anyway).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

LOOP = "Lightning's loop (fit loop, hook dispatch, batch transfer)"
LOG = "self.log / log_dict, logger connector, loggers"
OPTIMIZER = "optimizer wrappers (LightningOptimizer, strategy, precision plugin)"
FROZEN = "frozen-D context (GANModule.frozen)"
MODEL = "model's own training_step work (ganzoo.models, Python)"
TORCH = "networks and optimizers (torch: forward, backward, Adam)"
DATA = "data loader (the in-memory synthetic batches)"
PLAIN = "plain loop's own Python (tests.references.loops)"
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
    if "/torch/utils/data/" in path or (path.endswith("/bench/synthetic.py") and name in ("__getitem__", "__len__")):
        return DATA
    if "/lightning/" in path:
        return LOOP
    if path.endswith("/tests/references/loops.py"):
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
    code`` names each callback method (:func:`callback_code_owners`).
    """
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = {key: classify(key, callback_code) for key in stats}
    # Code without a group reaches a group through its callers. Recursion (a module's __call__ -> forward ->
    # a submodule's __call__) makes cycles among such code: each cycle counts as one piece of code whose callers
    # are the callers from outside it.
    neutral = [key for key in stats if own[key] is None]
    component = strongly_connected_components(
        neutral, lambda key: [c for c in stats[key][4] if c in stats and own[c] is None]
    )
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


def strongly_connected_components(nodes: list[Any], successors: Callable[[Any], list[Any]]) -> dict[Any, int]:
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


def callback_code_owners(callbacks: list[Any]) -> dict[tuple[str, int, str], str]:
    """Each function defined by the callbacks' classes (their bases up to Lightning's ``Callback``), as cProfile
    keys functions, mapped to the classes that use it: ``SampleGrid`` or, for a shared base's method,
    ``ImageSheetCallback (ClassSheet, SampleGrid)``."""
    from lightning.pytorch import Callback

    users: dict[tuple[str, int, str], set[str]] = {}
    owner: dict[tuple[str, int, str], str] = {}
    for cb in callbacks:
        for cls in type(cb).__mro__:
            if cls in (Callback, object) or not issubclass(cls, Callback):
                continue
            for value in vars(cls).values():
                function = getattr(value, "__func__", value)  # staticmethod / classmethod
                if isinstance(value, property):
                    function = value.fget
                code = getattr(function, "__code__", None)
                if code is None:
                    continue
                key = (code.co_filename, code.co_firstlineno, code.co_name)
                users.setdefault(key, set()).add(type(cb).__name__)
                owner[key] = cls.__name__
    named: dict[tuple[str, int, str], str] = {}
    # Module-level helpers of a callback's file (line -1, name "*"): counted for the callbacks defined there.
    files: dict[str, set[str]] = {}
    for cb in callbacks:
        for cls in type(cb).__mro__:
            module = sys.modules.get(cls.__module__)
            if cls not in (Callback, object) and issubclass(cls, Callback) and getattr(module, "__file__", None):
                files.setdefault(module.__file__, set()).add(type(cb).__name__)  # type: ignore[union-attr]
    for filename, classes in files.items():
        named[(filename, -1, "*")] = ", ".join(sorted(classes))
    for key, classes in users.items():
        if classes == {owner[key]}:
            named[key] = owner[key]
        else:
            named[key] = f"{owner[key]} ({', '.join(sorted(classes))})"
    return named
