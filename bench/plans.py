"""What ``python -m bench.throughput`` times: the models, configs and sides, the step counts of each (model,
config) per device kind, and the speed variants (precision, channels_last, torch.compile)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MODELS = ("dcgan", "cyclegan", "pix2pix", "biggan")
CONFIGS = ("cpu", "real", "tiny")
#: full: python -m ganzoo.train's stack; bare: the module in a bare Trainer; plain: tests.references.loops.
SIDES = ("full", "bare", "plain")
EXPERIMENTS = {
    ("dcgan", "cpu"): "dcgan_fmnist",
    ("dcgan", "real"): "dcgan_cifar10",
    ("dcgan", "tiny"): "dcgan_fmnist",
    ("cyclegan", "cpu"): "cyclegan_fmnist",
    ("cyclegan", "real"): "cyclegan_horse2zebra",
    ("cyclegan", "tiny"): "cyclegan_fmnist",
    ("pix2pix", "cpu"): "pix2pix_fmnist",
    ("pix2pix", "real"): "pix2pix_facades",
    ("pix2pix", "tiny"): "pix2pix_fmnist",
    ("biggan", "cpu"): "biggan_fmnist",
    ("biggan", "real"): "biggan_cifar10",
    ("biggan", "tiny"): "biggan_fmnist",
}
#: Overrides on top of the experiment. ``tiny``: channel widths so small that the arithmetic is negligible next
#: to the per-iteration cost of the framework (same layer counts and loop as the experiment), small batches.
OVERRIDES: dict[tuple[str, str], tuple[str, ...]] = {
    ("dcgan", "tiny"): ("model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=4"),
    ("cyclegan", "tiny"): ("model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=2"),
    ("pix2pix", "tiny"): ("model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=2"),
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
        ("pix2pix", "cpu"): (5, 30, 3),
        ("biggan", "cpu"): (5, 15, 3),
        ("dcgan", "real"): (2, 4, 3),
        ("cyclegan", "real"): (1, 2, 3),
        ("pix2pix", "real"): (2, 4, 3),
        ("biggan", "real"): (1, 2, 1),
        **{(model, "tiny"): (50, 500, 3) for model in MODELS},
    },
    "cuda": {
        ("dcgan", "cpu"): (20, 200, 3),
        ("cyclegan", "cpu"): (20, 200, 3),
        ("pix2pix", "cpu"): (20, 200, 3),
        ("biggan", "cpu"): (20, 200, 3),
        ("dcgan", "real"): (20, 100, 3),
        ("cyclegan", "real"): (20, 100, 3),
        ("pix2pix", "real"): (20, 100, 3),
        ("biggan", "real"): (20, 100, 3),
        **{(model, "tiny"): (50, 500, 3) for model in MODELS},
    },
}
QUICK_PLAN = (1, 2, 1)

#: Variants run at the real configs on a GPU by default (the other configs and CPUs run ``fp32`` only).
GPU_VARIANTS = ("fp32", "bf16", "bf16+channels_last", "bf16+compile", "bf16+channels_last+compile")
#: Variant precision -> Lightning's ``trainer.precision``.
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}

#: Evaluation: (warm-up batches, measured batches, largest batch) per extractor and device kind.
EVAL_PLANS = {
    "cpu": {"classifier": (2, 10, 500), "inception": (1, 2, 10)},
    "cuda": {"classifier": (3, 20, 500), "inception": (3, 20, 500)},
}
QUICK_EVAL_PLAN = (1, 1, 8)


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
        """``fp32|bf16[+channels_last][+compile[=<mode>]]``; SystemExit with one line for anything else."""
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


@dataclass
class Plan:
    """The repeats of one (model, config, variant), and (once run) each side's results by repeat."""

    model: str
    config: str
    variant: Variant
    warmup: int
    measured: int
    repeats: int
    threads: int | None = None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def experiment_overrides(model: str, config: str) -> list[str]:
    """The command-line overrides of a (model, config): ``experiment=...`` and the config's own overrides."""
    return [f"experiment={EXPERIMENTS[model, config]}", *OVERRIDES.get((model, config), ())]


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


def choices(text: str, allowed: Iterable[str], what: str) -> list[str]:
    """The comma-separated names of ``text``; SystemExit naming the option ``--what`` when one is not allowed."""
    allowed = list(allowed)
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        raise SystemExit(f"error: --{what}: {', '.join(bad) or repr(text)} not among {', '.join(allowed)}")
    return chosen
