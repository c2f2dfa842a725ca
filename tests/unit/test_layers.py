"""The import graph of ``src/ganzoo``: no module imports one of a higher layer (docs/development.md, "Code layout"),
so there are no import cycles between layers either."""

from __future__ import annotations

import ast
from pathlib import Path

import ganzoo

SOURCE = Path(ganzoo.__file__).resolve().parent

#: ganzoo's modules and packages from the lowest layer to the highest; a module may import those before it.
LAYERS = (
    "errors", "images", "distributed", "compat", "cpus", "nets", "data", "losses", "augment", "checkpoint", "sampling",
    "loop", "models", "weights", "metrics", "loggers", "callbacks", "layer_sync", "hydra_ddp", "settings", "cli",
    "loading", "train", "sample", "evaluate", "translate",
)  # fmt: skip


def layer_of(module: str) -> str | None:
    """``ganzoo.data.base`` -> ``data``; None for the package itself and for other packages."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ganzoo" and len(parts) > 1 else None


def imports(path: Path) -> set[str]:
    """The absolute imports in a source file, function-level and ``TYPE_CHECKING`` ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_module_has_a_layer() -> None:
    top_level = {p.stem for p in SOURCE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    packages = {p.parent.name for p in SOURCE.glob("*/__init__.py") if p.parent.name != "conf"}
    assert sorted((top_level | packages) - set(LAYERS)) == [], "give each new module its place in LAYERS"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for path in SOURCE.rglob("*.py"):
        source = layer_of(".".join(("ganzoo", *path.relative_to(SOURCE).with_suffix("").parts)))
        if source is None or source == "__init__":
            continue
        for target in filter(None, map(layer_of, imports(path))):
            if target != source and LAYERS.index(target) > LAYERS.index(source):
                upward.append(f"{path.relative_to(SOURCE)} imports ganzoo.{target}")
    assert sorted(upward) == [], "move the shared code down a layer, or the importing code up"
