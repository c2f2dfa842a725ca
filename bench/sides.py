"""The three sides of the comparison, each one measurement in a worker process (:func:`measure`):

* **full** (:func:`run_full`): what ``python -m ganzoo.train experiment=<experiment>`` runs, ``ganzoo.train.train``
  itself on :func:`bench.configs.full_stack_config` (the whole default callbacks group and the CSV logger, the
  bench's synthetic data, no metrics group), timed by an appended :class:`bench.trainer_parts.IterationClock`;
* **bare** (:func:`run_bare`): the same LightningModule in a bare ``lightning.Trainer`` (a CSV logger at the
  config's ``log_every_n_steps``; no checkpointing, progress bar, model summary or other callbacks);
* **plain** (:func:`run_plain`): the same networks (fresh instances built from the same config and seed) trained
  by the plain-PyTorch loop of :mod:`tests.references.loops`, which the tests prove computes the same weights, timed by
  the same :class:`bench.timing.Clock`. This side never imports Lightning (checked after each run).

Every side trains on the same in-memory batches of :mod:`bench.synthetic`.
"""

from __future__ import annotations

import copy
import inspect
import sys
import tempfile
from typing import Any

import torch

from bench.configs import full_stack_config
from bench.memory import MemoryMeter
from bench.plans import PRECISIONS
from bench.synthetic import loader_for
from bench.timing import Clock, window_statistics
from bench.workers import Job, quiet_lightning, training_settings

#: Model config keys that do not change the training iteration (sampling and translation settings, and the speed
#: switches that the bench applies to the plain side itself); every other key must be an argument of the plain loop.
NOT_TRAINING_KEYS = {
    "_target_",
    "generator",
    "discriminator",
    "use_ema",
    "G_eval_mode",
    "standing_stats",
    "standing_batch_size",
    # pix2pix: the way the data's pairs run (the batches are already (input, target)), and how it translates.
    "direction",
    "eval_mode",
    "channels_last",
    "compile",
}


def run_full(job: Job, device: torch.device) -> dict[str, Any]:
    """``ganzoo.train.train(cfg)`` on the full stack (:func:`bench.configs.full_stack_config`), timed by the
    appended clock."""
    from bench.trainer_parts import REMEMBERED, clock_entry
    from ganzoo.train import train

    quiet_lightning()
    steps = job.warmup + job.measured + 1
    clock = clock_entry(job.warmup, job.measured, profile=job.profile, threads=job.threads)
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        cfg = full_stack_config(
            job.model, job.config, job.variant, device, steps, tmp, {"bench_clock": clock}, seed=job.seed
        )
        train(cfg)
    timer = REMEMBERED["clock"]
    if timer.clock is None or not timer.clock.finished:
        raise RuntimeError(f"the run ended before the timed window did ({timer.batches} of {steps} iterations)")
    result = {"stamps": timer.clock.stamps, **timer.clock.memory, "info": timer.info, "threads": timer.info["threads"]}
    if timer.clock.profiler is not None:
        from bench.profiling import profile_groups

        result["profile"] = profile_groups(timer.clock.profiler, timer.callback_code, job.measured)
    return result


def run_bare(job: Job, device: torch.device) -> dict[str, Any]:
    """The LightningModule in a bare ``lightning.Trainer``: a CSV logger and the clock, nothing else."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import CSVLogger

    from bench.trainer_parts import IterationClock

    quiet_lightning()
    torch.manual_seed(job.seed)
    model = instantiate(job.values["model"], _convert_="all")
    steps = job.warmup + job.measured + 1
    timer = IterationClock(job.warmup, job.measured, profile=job.profile, threads=job.threads)
    with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as tmp:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=PRECISIONS[job.variant.precision],
            max_steps=steps,
            max_epochs=1,
            logger=CSVLogger(tmp, name="bench"),
            log_every_n_steps=job.values["log_every_n_steps"],
            callbacks=[timer],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=tmp,
        )
        trainer.fit(model, train_dataloaders=loader_for(job.values["data"], steps, device))
    if timer.clock is None or not timer.clock.finished:
        raise RuntimeError(f"ganzoo ran {trainer.global_step} iterations, expected {steps}")
    return {"stamps": timer.clock.stamps, **timer.clock.memory, "threads": timer.info["threads"]}


def plain_arguments(cls: type, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The model config's training settings, as arguments of the plain loop ``cls``; RuntimeError for a key that
    would change the iteration but that the loop does not take."""
    accepted = set(inspect.signature(cls).parameters)
    if model_cfg.get("augment", "none") not in (None, "none"):
        raise RuntimeError(
            f"model.augment={model_cfg['augment']}: the plain loops do not augment, so they would not do the same "
            "work; bench with model.augment=none"
        )
    # Without augmentation its options change nothing.
    unknown = set(model_cfg) - accepted - NOT_TRAINING_KEYS - {"augment", "augment_options"}
    if unknown:
        raise RuntimeError(
            f"model config keys {sorted(unknown)} are not arguments of {cls.__name__}: the plain loop would not do "
            "the same work; teach tests/references/loops.py about them (or add them to NOT_TRAINING_KEYS)"
        )
    return {
        k: v
        for k, v in model_cfg.items()
        if k in accepted and k not in NOT_TRAINING_KEYS | {"augment", "augment_options"}
    }


def build_plain(job: Job, device: torch.device) -> tuple[Any, list[torch.nn.Module]]:
    """The plain loop on fresh networks built from the model config with the job's seed, as the module builds them."""
    from hydra.utils import instantiate
    from tests.references import loops as plain_loops

    model_cfg = job.values["model"]
    dtype = torch.bfloat16 if job.variant.precision == "bf16" else None
    torch.manual_seed(job.seed)
    if job.model == "cyclegan":
        make_g, make_d = instantiate(model_cfg["generator"]), instantiate(model_cfg["discriminator"])
        g_a2b, g_b2a, d_a, d_b = make_g(), make_g(), make_d(), make_d()
        trained = [g_a2b, g_b2a, d_a, d_b]
    elif job.model == "pix2pix":
        # Factories (``_partial_``), called G first as the module calls them.
        make_g, make_d = instantiate(model_cfg["generator"]), instantiate(model_cfg["discriminator"])
        trained = [make_g(), make_d()]
    else:
        trained = [instantiate(model_cfg["generator"]), instantiate(model_cfg["discriminator"])]
    memory_format = torch.channels_last if job.variant.channels_last else torch.preserve_format
    for net in trained:
        net.to(device=device, memory_format=memory_format).train()
    extra: dict[str, Any] = {}
    if job.model == "biggan" and model_cfg.get("ema"):
        # ganzoo's EMA copy is made before training and moved (and converted) with the module, never compiled.
        extra["G_ema"] = copy.deepcopy(trained[0]).requires_grad_(False)
    if job.variant.compile:
        mode = {} if job.variant.compile == "default" else {"mode": job.variant.compile}
        for net in trained:
            net.compile(**mode)
    if job.model == "dcgan":
        loop = plain_loops.PlainDCGAN(*trained, **plain_arguments(plain_loops.PlainDCGAN, model_cfg), autocast=dtype)
    elif job.model == "cyclegan":
        # Official names: netG_A = A -> B, netG_B = B -> A, netD_A judges B, netD_B judges A.
        args = plain_arguments(plain_loops.PlainCycleGAN, model_cfg)
        loop = plain_loops.PlainCycleGAN(g_a2b, g_b2a, d_b, d_a, **args, autocast=dtype)
    elif job.model == "pix2pix":
        # Dropout masks seeded from (job seed, iteration), as the module seeds them from (run seed, step, rank 0).
        args = plain_arguments(plain_loops.PlainPix2Pix, model_cfg)
        loop = plain_loops.PlainPix2Pix(*trained, **args, autocast=dtype, run_seed=job.seed)
    else:
        args = plain_arguments(plain_loops.PlainBigGAN, model_cfg)
        loop = plain_loops.PlainBigGAN(*trained, **args, **extra, autocast=dtype)
    return loop, trained


def run_plain(job: Job, device: torch.device) -> dict[str, Any]:
    """The plain loop over the same synthetic batches, timed by the same :class:`bench.timing.Clock`."""
    loop, _ = build_plain(job, device)
    steps = job.warmup + job.measured + 1
    data = loader_for(job.values["data"], steps, device)
    meter = MemoryMeter(device)
    clock = Clock(job.warmup, job.measured, device, keep_each=device.type != "cuda", meter=meter, profile=job.profile)
    meter.start()
    for iteration, batch in enumerate(data):
        batch = [t.to(device, non_blocking=True) for t in batch]
        if job.variant.channels_last:  # what ganzoo's on_after_batch_transfer does
            batch = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch]
        clock.tick(iteration)
        if clock.finished:
            break
        loop.step(batch)
    loop.end_epoch()
    if "lightning" in sys.modules:
        raise RuntimeError("the plain side imported Lightning")
    if not clock.finished:
        raise RuntimeError(f"the loader ended before the timed window did ({steps} batches)")
    result: dict[str, Any] = {"stamps": clock.stamps, **clock.memory, "threads": torch.get_num_threads()}
    if clock.profiler is not None:
        from bench.profiling import profile_groups

        result["profile"] = profile_groups(clock.profiler, {}, job.measured)
    return result


SIDE_RUNS = {"full": run_full, "bare": run_bare, "plain": run_plain}


def measure(job: Job) -> dict[str, Any]:
    """One measurement, in its own process: the job's side, then the window's statistics
    (:func:`bench.timing.window_statistics`) with the side's memory, threads (and profile)."""
    device = torch.device(job.device)
    if job.threads:
        torch.set_num_threads(job.threads)
    training_settings(device)
    per_iteration = int(job.values["data"]["batch_size"])
    result = SIDE_RUNS[job.side](job, device)
    stamps = result.pop("stamps")
    return {**window_statistics(stamps, job.measured, per_iteration), **result}
