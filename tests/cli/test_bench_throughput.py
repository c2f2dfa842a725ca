"""``make bench`` (``python -m bench.throughput``, ``python -m bench.overhead``): the timing machinery, and a
smoke run of the three sides on tiny networks with the profile."""

from __future__ import annotations

import cProfile
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench import timing
from bench.plans import Variant
from bench.profiling import FROZEN, LOOP, MODEL, TORCH, classify, profile_groups, strongly_connected_components
from bench.timing import Clock, window_statistics

from tests.conftest import REPO, cli_env


def test_variant_names_round_trip_including_compile_modes() -> None:
    for name in ("fp32", "bf16", "bf16+channels_last", "bf16+channels_last+compile", "bf16+compile=reduce-overhead"):
        assert Variant.parse(name).name == name
    assert Variant.parse("bf16+compile").compile_setting is True
    assert Variant.parse("compile=max-autotune").compile_setting == "max-autotune"
    assert Variant.parse("fp32").compile_setting is False
    with pytest.raises(SystemExit, match="^error: unknown variant part"):
        Variant.parse("bf16+fast")


def test_clock_syncs_the_device_only_at_the_two_ends_of_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync per iteration would stall a GPU's run-ahead: one at the start of the window and one at its end."""
    synced: list[int] = []
    iteration = 0
    monkeypatch.setattr(timing, "synchronize", lambda device: synced.append(iteration))
    clock = Clock(warmup=3, measured=5, device=torch.device("cpu"), keep_each=False)
    for iteration in range(10):
        clock.tick(iteration)
    assert synced == [3, 8]
    assert [stamp[0] for stamp in clock.stamps] == [3, 8] and clock.finished

    each = Clock(warmup=1, measured=4, device=torch.device("cpu"), keep_each=True)
    for iteration in range(6):
        each.tick(iteration)
    assert [stamp[0] for stamp in each.stamps] == [1, 2, 3, 4, 5]
    stats = window_statistics(each.stamps, 4, per_iteration=8)
    assert len(stats["ms_per_iteration_each"]) == 4
    assert stats["images_per_s"] == pytest.approx(8 * 1000 / stats["ms_per_iteration"])
    with pytest.raises(RuntimeError, match="timed 4 iterations, expected 5"):
        window_statistics(each.stamps, 5, per_iteration=8)


def test_strongly_connected_components_group_recursion() -> None:
    graph = {1: [2], 2: [3], 3: [1, 4], 4: [5], 5: [4], 6: []}
    component = strongly_connected_components(list(graph), lambda node: graph[node])
    assert component[1] == component[2] == component[3]
    assert component[4] == component[5] != component[1]
    assert len(set(component.values())) == 3


def test_profile_groups_split_time_by_owner() -> None:
    """torch work called from a model's step counts for the networks; from the frozen context, for the context."""
    from ganzoo.models.base import GANModule

    generator = torch.nn.Linear(8, 8)
    discriminator = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    module = GANModule()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        with module.frozen(discriminator):
            discriminator(generator(torch.randn(4, 8))).sum().backward()
    profiler.disable()
    result = profile_groups(profiler, {}, measured=3)
    groups = {g["group"]: g for g in result["groups"]}
    assert FROZEN in groups
    assert sum(g["share"] for g in result["groups"]) == pytest.approx(1.0)
    assert result["profiled_ms_per_iteration"] > 0
    frozen_code = GANModule.frozen.__wrapped__.__code__
    key = (frozen_code.co_filename, frozen_code.co_firstlineno, "frozen")
    assert classify(key, {}) == FROZEN
    assert classify(("/x/lightning/pytorch/loops/fit_loop.py", 1, "run"), {}) == LOOP
    assert classify(("/x/ganzoo/models/dcgan.py", 1, "training_step"), {}) == MODEL
    assert classify(("~", 0, "<built-in method torch.conv2d>"), {}) is None  # counts for its callers
    assert TORCH != MODEL


@pytest.mark.slow
def test_tiny_overhead_runs_three_sides_and_profiles(tmp_path: Path) -> None:
    """``python -m bench.overhead --quick --profile dcgan``: full, bare and plain on DCGAN's tiny networks, each in its
    own process, the differences to plain, and the cProfile groups; JSON and markdown written."""
    out = tmp_path / "cpu.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.overhead",
            "--quick",
            "--models",
            "dcgan",
            "--profile",
            "dcgan",
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=cli_env(PYTHONPATH=f"{REPO}:{REPO / 'src'}"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    (entry,) = report["training"]
    assert (entry["model"], entry["config"], entry["threads"]) == ("dcgan", "tiny", 1)
    for side in ("full", "bare", "plain"):
        assert not entry[side]["errors"], entry[side]["errors"]
        assert entry[side]["ms_per_iteration_median"] > 0
        assert entry[side]["threads"] == [1]
    assert entry["overhead_ms"] == pytest.approx(
        entry["full"]["ms_per_iteration_median"] - entry["plain"]["ms_per_iteration_median"]
    )
    full_run = entry["full"]["runs"][0]
    assert "GANCheckpoint" in full_run["info"]["callbacks"] and "IterationProgressBar" in full_run["info"]["callbacks"]
    groups = {g["group"] for g in report["profile"]["groups"]}
    assert TORCH in groups and LOOP in groups
    assert any(group.startswith("callback ") for group in groups)
    table = out.with_suffix(".md").read_text()
    assert "Overhead per iteration on tiny networks" in table and "Where the time goes" in table


def test_every_model_has_its_experiments_plans_and_a_plain_loop_taking_its_config() -> None:
    """A model joining bench.plans.MODELS needs an experiment per config, step plans for CPUs and GPUs, tiny
    widths, GPU-check steps, and a plain loop whose arguments cover its config's training settings."""
    from bench.gpu_check import GPU_STEPS
    from bench.plans import CONFIGS, EXPERIMENTS, MODELS, OVERRIDES, PLANS
    from bench.sides import plain_arguments
    from omegaconf import OmegaConf

    from ganzoo.train import compose_config
    from tests.references import loops

    plain = {"dcgan": loops.PlainDCGAN, "cyclegan": loops.PlainCycleGAN, "pix2pix": loops.PlainPix2Pix}
    plain["biggan"] = loops.PlainBigGAN
    assert set(plain) == set(MODELS) == set(GPU_STEPS)
    for model in MODELS:
        assert {(model, config) for config in CONFIGS} <= set(EXPERIMENTS), model
        assert all((model, config) in PLANS[kind] for kind in PLANS for config in CONFIGS), model
        assert (model, "tiny") in OVERRIDES, model
        cfg = compose_config([f"experiment={EXPERIMENTS[model, 'tiny']}", *OVERRIDES[model, "tiny"]])
        plain_arguments(plain[model], OmegaConf.to_container(cfg.model, resolve=True))  # raises on a missing key
