"""What the bench puts into a Lightning run: ``python -m ganzoo.train``'s config, and the bare Trainer.

* :class:`SyntheticDataModule` replaces ``cfg.data`` (through its ``_target_``): the in-memory batches of
  :mod:`bench.synthetic`, with the config's image size, channels, classes and batch size, so the model config's
  interpolations (``${data.image_size}``) still resolve and no image is decoded.
* :class:`IterationClock` is appended to ``cfg.callbacks`` (:func:`clock_entry`): wall and CPU time of the
  timed iterations (:class:`bench.timing.Clock`, the plain loop's clock), optionally under cProfile.
* :func:`remember` wraps a callback entry (:func:`remembered`) so that the instance ``ganzoo.train.train``
  builds can be read after the run (``train`` returns the metrics only).

This module loads Lightning; the plain side of the bench never imports it.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset, TensorDataset

from bench.memory import MemoryMeter
from bench.profiling import callback_code_owners
from bench.synthetic import synthetic_batches, synthetic_loader
from bench.timing import Clock
from ganzoo.data.base import ImageDataModule

#: Callback instances built by :func:`remember`, by key.
REMEMBERED: dict[str, Any] = {}


def remember(key: str, callback: Any) -> Any:
    """``_target_`` for a callbacks entry ``{_target_: bench.trainer_parts.remember, key: K, callback: {...}}``:
    Hydra builds ``callback`` first; it is kept in :data:`REMEMBERED` under ``key`` and handed to the trainer."""
    REMEMBERED[key] = callback
    return callback


def remembered(key: str, callback: dict[str, Any]) -> dict[str, Any]:
    """A callbacks entry that builds ``callback`` (a config with ``_target_``) and keeps it under ``key``."""
    return {"_target_": "bench.trainer_parts.remember", "key": key, "callback": callback}


def clock_entry(
    warmup: int, measured: int, profile: bool = False, threads: int | None = None, key: str = "clock"
) -> dict[str, Any]:
    """A callbacks entry that appends an :class:`IterationClock`, kept in :data:`REMEMBERED` under ``key``."""
    clock = {
        "_target_": "bench.trainer_parts.IterationClock",
        "warmup": warmup,
        "measured": measured,
        "profile": profile,
        "threads": threads,
    }
    return remembered(key, clock)


class SyntheticDataModule(ImageDataModule):
    """``steps`` loader batches cycling through ``distinct`` in-memory batches of uniform noise in [-1, 1].

    Batches are ``(images, labels)`` (uniform labels, all 0 for unlabelled data) or, with ``pairs``,
    ``(images_A, images_B)`` as CycleGAN's unpaired loaders and pix2pix's paired ones give them
    (:func:`bench.synthetic.synthetic_batches`). ``paired`` says the pairs stand for aligned ones, as the paired
    DataModules' ``paired`` attribute does (pix2pix refuses data without it); ``direction`` is the experiment's
    ``data.direction``, which the model config interpolates. They are built once (pinned when ``pin_memory``, as a
    pinning loader hands them over), so loading costs the same on both sides of a comparison and nothing is
    decoded. The evaluation split (``eval_images`` random images of each kind) serves real statistics;
    :meth:`fixed_examples` serves translation sheets.
    """

    dataset_name = "synthetic batches"
    short_name = "synthetic"

    def __init__(
        self,
        image_size: int,
        channels: int,
        batch_size: int,
        num_classes: int = 0,
        pairs: bool = False,
        paired: bool = False,
        direction: str = "AtoB",
        steps: int = 1000,
        distinct: int = 8,
        batch_seed: int = 1234,
        eval_images: int = 64,
        pin_memory: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(
            data_dir=".",
            image_size=image_size,
            channels=channels,
            batch_size=batch_size,
            num_workers=0,
            pin_memory=pin_memory,
            num_classes=num_classes,
            name=name,
        )
        self.pairs, self.paired, self.direction = pairs, paired, direction
        self.steps, self.distinct = steps, distinct
        self.batch_seed, self.eval_images = batch_seed, eval_images

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        gen = torch.Generator().manual_seed(self.batch_seed + 1)
        n, c, s = self.eval_images, self.channels, self.image_size
        images = torch.rand(n, c, s, s, generator=gen) * 2 - 1
        labels = (
            torch.randint(max(self.num_classes, 1), (n,), generator=gen) if self.num_classes else torch.full((n,), -1)
        )
        dataset = TensorDataset(images, labels)
        return dataset, dataset

    def train_dataloader(self) -> DataLoader:
        batches = synthetic_batches(
            self.process_batch_size, self.channels, self.image_size, self.num_classes, self.pairs,
            min(self.steps, self.distinct), self.batch_seed,
        )  # fmt: skip
        return synthetic_loader(batches, self.steps, pin=self.pin_memory and torch.cuda.is_available())

    def fixed_examples(self, n: int, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` images of the evaluation split as domain A (pix2pix: the inputs) and, flipped upside down,
        as domain B (the targets)."""
        images = self.eval_dataset(split).tensors[0]  # type: ignore[attr-defined]
        images = images[torch.arange(n) % len(images)]
        return images, images.flip(-2)


class IterationClock(Callback):
    """Times iterations ``warmup`` .. ``warmup + measured - 1`` of a run with :class:`bench.timing.Clock`.

    Stamps are taken at the start of each batch (after its transfer to the device), so an iteration's time
    includes every callback hook after its step, checkpoints included, and the next batch's fetch: the
    run needs ``warmup + measured + 1`` batches. On a GPU the device is synchronised only at the two ends of
    the timed window. ``threads`` sets torch's CPU threads at the start of training (after anything the
    entry point set); ``profile`` runs cProfile over the timed window. :attr:`info` records the run's
    strategy, world size, precision and threads.
    """

    def __init__(
        self,
        warmup: int,
        measured: int,
        keep_each: bool | None = None,
        profile: bool = False,
        threads: int | None = None,
    ) -> None:
        self.warmup, self.measured, self.keep_each = warmup, measured, keep_each
        self.profile, self.threads = profile, threads
        self.clock: Clock | None = None
        self.meter: MemoryMeter | None = None
        self.info: dict[str, Any] = {}
        #: Code locations of every callback method (``(file, line, name)``) -> the callback class(es) defining it.
        self.callback_code: dict[tuple[str, int, str], str] = {}
        self.batches = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        device = pl_module.device
        self.meter = MemoryMeter(device)
        self.meter.start()
        keep_each = device.type != "cuda" if self.keep_each is None else self.keep_each
        self.clock = Clock(
            self.warmup, self.measured, device, keep_each=keep_each, meter=self.meter, profile=self.profile
        )
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.info = {
            "strategy": type(trainer.strategy).__name__,
            "world_size": trainer.world_size,
            "precision": str(trainer.precision),
            "threads": torch.get_num_threads(),
            "backend": torch.distributed.get_backend() if distributed else None,
            "callbacks": [type(cb).__name__ for cb in trainer.callbacks],
        }
        if self.profile:
            self.callback_code = callback_code_owners(trainer.callbacks)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        assert self.clock is not None
        self.clock.tick(self.batches)
        self.batches += 1
