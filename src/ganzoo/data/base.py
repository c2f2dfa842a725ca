"""The LightningDataModule every ganzoo dataset derives from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ganzoo.data.loader_position import LoaderPosition, PositionTrackingLoader
from ganzoo.data.loader_settings import AUTO, LoaderRequest, LoaderSettings, Placement
from ganzoo.data.sampler import EpochShuffleSampler
from ganzoo.data.subset import TrainSubset, check_fraction, subset_indices
from ganzoo.distributed import process_share
from ganzoo.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _check_positive(name: str, value: int, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"data.{name} must be a positive integer, got {value!r}: set data.{name}={example}")


def check_load_size(load_size: int, image_size: int, remedy: str = "") -> None:
    """Images are resized to ``load_size`` before an ``image_size`` crop, so it may not be smaller."""
    if load_size < image_size:
        raise ConfigError(
            f"data.load_size={load_size} is smaller than data.image_size={image_size}: "
            f"set data.load_size to at least {image_size}{remedy}"
        )


def without_augmentation(dataset: Dataset) -> Dataset:
    """``dataset.without_augmentation()`` where the dataset offers one (a deterministic view), else ``dataset``."""
    view = getattr(dataset, "without_augmentation", None)
    return view() if view is not None else dataset


def dataset_fingerprint(dataset: Dataset) -> str | None:
    """``dataset.fingerprint()`` (a digest that changes with the data) where the dataset offers one, else None."""
    digest = getattr(dataset, "fingerprint", None)
    return digest() if digest is not None else None


class ImageDataModule(L.LightningDataModule):
    """Base class: a train and a val set of ``(image, label)`` items, and their loaders.

    Every item is ``image``: float32 (channels, image_size, image_size) in [-1, 1], and
    ``label``: int64 scalar in [0, num_classes), or -1 when the data is unlabeled
    (``num_classes == 0``). Batches are therefore (B, channels, image_size, image_size)
    and (B,).

    Args:
        data_dir: where the dataset lives (or is downloaded to).
        image_size: side of the square images the loaders yield.
        channels: 1 (grey) or 3 (RGB); sources with the other count are converted.
        batch_size: images per batch (both loaders), for the whole run: under DDP each of the ``world_size``
            processes loads ``batch_size // world_size`` (see :attr:`process_batch_size`), so a run learns
            the same way on 1 or 8 GPUs.
        num_workers: DataLoader worker processes; 0 loads in the main process. ``"auto"``: chosen for the
            run's device (see :mod:`ganzoo.data.loader_settings`): on an accelerator the CPUs of this process
            minus one (1 to 8), on a CPU :attr:`cpu_num_workers`.
        pin_memory: pin batches for faster host-to-GPU copies; ``"auto"``: on a CUDA run. Never requested
            where no CUDA device exists.
        persistent_workers: keep workers alive between epochs (ignored when num_workers == 0); ``"auto"``:
            whenever there are workers.
        prefetch_factor: batches each worker loads ahead (ignored when num_workers == 0); ``"auto"``: 4 on
            an accelerator, torch's default (2) on a CPU.
        drop_last: drop the last incomplete train batch (the val loader keeps it).
        flip: random horizontal flips, train set only.
        train_fraction: train on this fraction of the train split only (e.g. 0.1: the small-data regime of
            DiffAugment/ADA), a subset fixed by the data and the fraction alone (:mod:`ganzoo.data.subset`); the
            evaluation still uses the whole splits. None: all of it.
        seed: seeds the train shuffle order, DDP shards, augmentation and any train/val split; None draws one per run.
        num_classes: optional expected class count; checked against the data.
        name: short name used in metric names and cache files (``val/fid_<name>``); default
            :attr:`short_name`, e.g. ``fmnist``.

    Subclasses implement :meth:`_build_datasets`, and :meth:`prepare_data` when they can download.
    All constructor arguments, the subclass's included, are saved as hyperparameters (and so in checkpoints);
    they are not merged into the logged hyperparameters, which the run's config already holds in full.

    :meth:`state_dict` holds where the train loader is (epoch, items taken), so that a run resumed from a
    checkpoint continues with the batch, flips and crops the uninterrupted run would have trained on next.
    """

    #: Class count fixed by the dataset; None when only the data can tell (image folders).
    dataset_num_classes: ClassVar[int | None] = None
    #: Display name used in messages.
    dataset_name: ClassVar[str] = "dataset"
    #: Default of ``name``: a short identifier without spaces, for metric keys and cache files.
    short_name: ClassVar[str] = "data"
    #: What ``num_workers="auto"`` means on a CPU run: 0 when items come from memory, leaving the cores to
    #: the training step. Image-file data modules set 2, so decoding overlaps with the step; CIFAR keeps the 2
    #: its CPU runs have always had.
    cpu_num_workers: ClassVar[int] = 0

    def __init__(
        self,
        data_dir: str,
        image_size: int,
        channels: int,
        batch_size: int = 64,
        num_workers: int | Literal["auto"] = AUTO,
        pin_memory: bool | Literal["auto"] = AUTO,
        persistent_workers: bool | Literal["auto"] = AUTO,
        prefetch_factor: int | Literal["auto"] = AUTO,
        drop_last: bool = True,
        flip: bool = False,
        train_fraction: float | None = None,
        seed: int | None = 0,
        num_classes: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        # Walks up the __init__ frames, so subclass arguments are recorded too. Not for the loggers: the run's
        # config is logged whole, and Lightning's merge with the model's hyperparameters fails on shared names
        # that differ (BigGAN's batch_size is the batch of one D step, data.batch_size the loader's).
        self.save_hyperparameters(logger=False)
        _check_positive("image_size", image_size, "64")
        _check_positive("batch_size", batch_size, "64")
        if channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {channels!r}: set data.channels=1 or data.channels=3")
        self.loader_request = LoaderRequest(num_workers, pin_memory, persistent_workers, prefetch_factor)
        fixed = self.dataset_num_classes
        if num_classes is not None and fixed is not None and num_classes != fixed:
            raise ConfigError(
                f"{self.dataset_name} has {fixed} classes but data.num_classes={num_classes}: "
                f"set data.num_classes={fixed} or remove it"
            )
        self.data_dir = Path(data_dir).expanduser()
        self.image_size = image_size
        self.channels = channels
        self.batch_size = batch_size
        self._loader_settings_logged = False
        self.drop_last = drop_last
        self.flip = flip
        self.train_fraction = check_fraction(train_fraction)
        # seed=None (an unseeded run): a different shuffle order each run.
        self.seed = seed if seed is not None else int(torch.initial_seed() % 2**31)
        self._num_classes = fixed if fixed is not None else num_classes
        self.name = name or self.short_name
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"data.name={self.name!r} must be letters, digits, - or _: e.g. data.name=faces")
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        # The train loader of the current run, which tracks its position; and a position loaded from a
        # checkpoint for the next train loader to start at.
        self._train_loader: PositionTrackingLoader | None = None
        self._restored_position: LoaderPosition | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 means unlabeled (labels are -1)."""
        if self._num_classes is None:
            raise NotImplementedError(f"{type(self).__name__} must set num_classes")
        return self._num_classes

    def check_available(self) -> None:
        """Raise a one-line :class:`DataError` now if the data is certainly missing and cannot be downloaded.

        Called by the entry points right after the data module is built, before anything slow or unrelated
        (evaluator weights, model construction), so that a missing dataset is the first thing a user hears
        about. Only looks at whether files and folders exist: reading and checking them is :meth:`setup`'s job.
        The base class cannot tell and checks nothing.
        """

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        """Return ``(train_set, val_set)``; called once, by the first :meth:`setup`."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Build ``train_set`` and ``val_set`` (the same for every stage, so only once)."""
        if self.train_set is None or self.val_set is None:
            self.train_set, self.val_set = self._build_datasets()

    def _require_setup(self) -> tuple[Dataset, Dataset]:
        if self.train_set is None or self.val_set is None:
            self.setup()
        assert self.train_set is not None and self.val_set is not None
        return self.train_set, self.val_set

    def eval_dataset(self, split: str) -> Dataset:
        """The ``split`` ("train" or "val") set without augmentation: what real-image statistics are computed on."""
        train_set, val_set = self._require_setup()
        if split not in ("train", "val"):
            raise ConfigError(f"unknown split {split!r}: use train or val")
        return without_augmentation(train_set if split == "train" else val_set)

    def fingerprint(self, split: str) -> str | None:
        """A digest of the ``split`` data that changes when the data does (None if the dataset cannot tell)."""
        return dataset_fingerprint(self.eval_dataset(split))

    def _processes(self) -> tuple[int, int]:
        """(world size, global rank) of the run this module is attached to; (1, 0) outside a trainer."""
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def loader_settings(self, placement: Placement | None = None) -> LoaderSettings:
        """The DataLoader settings for ``placement``; by default the attached trainer's, or this machine's
        (one process, CUDA when present) outside a trainer. ``auto`` values are resolved, others kept."""
        return self.loader_request.resolve(placement or self._placement(), self.cpu_num_workers)

    def _placement(self) -> Placement:
        return Placement.of_trainer(self.trainer) if self.trainer is not None else Placement.of_machine()

    @property
    def num_workers(self) -> int:
        """DataLoader workers of this run (``num_workers`` resolved, see :meth:`loader_settings`)."""
        return self.loader_settings().num_workers

    @property
    def pin_memory(self) -> bool:
        """Whether batches are pinned in this run (see :meth:`loader_settings`)."""
        return self.loader_settings().pin_memory

    @property
    def persistent_workers(self) -> bool:
        """Whether workers live across epochs in this run (see :meth:`loader_settings`)."""
        return self.loader_settings().persistent_workers

    @property
    def prefetch_factor(self) -> int | None:
        """Batches each worker loads ahead in this run; None without workers (see :meth:`loader_settings`)."""
        return self.loader_settings().prefetch_factor

    @property
    def process_batch_size(self) -> int:
        """Images per batch in this process: the global ``batch_size`` split evenly over the DDP processes."""
        world_size, _ = self._processes()
        return process_share(self.batch_size, world_size, "data.batch_size")

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        # Both loaders shard across DDP processes themselves (trainer.use_distributed_sampler is off), so
        # that the train order stays a resumable function of (seed, epoch, position).
        world_size, rank = self._processes()
        sampler: Sampler | None = None
        if train:
            sampler = EpochShuffleSampler(len(dataset), seed=self.seed, num_replicas=world_size, rank=rank)  # type: ignore[arg-type]
            start = self._start_position(sampler)
            if start is not None:
                sampler.resume(start.epoch, start.items)
        elif world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
        placement = self._placement()
        settings = self.loader_settings(placement)
        if not self._loader_settings_logged:
            self._loader_settings_logged = True
            if rank == 0:
                log.info(self.loader_request.describe(settings, placement))
        # Workers only run __getitem__ on the (index, seed) keys the sampler yields in this process, so
        # batches are the same with any number of workers, and a resumed sampler resumes them too.
        kwargs: dict[str, Any] = {"batch_size": self.process_batch_size, "sampler": sampler, **settings.kwargs()}
        if not train:
            return DataLoader(dataset, **kwargs)
        self._train_loader = PositionTrackingLoader(dataset, drop_last=self.drop_last, **kwargs)
        self._restored_position = None  # from here on the loader's own position is the one to save
        return self._train_loader

    def state_dict(self) -> dict[str, Any]:
        """``{"train_position": {"epoch", "items"}}``: where the train loader is (see :meth:`load_state_dict`).

        ``items`` counts this process's share of the epoch's order handed out as batches (which under DDP is
        the same number on every process). Empty before any train loader exists or was restored.
        """
        position = self._train_loader.position if self._train_loader is not None else self._restored_position
        return {"train_position": position.state_dict()} if position is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position :meth:`state_dict` saved: the next train loader starts there.

        Lightning calls this when it restores a checkpoint, before the train loader is built.
        """
        saved = state_dict.get("train_position")
        self._restored_position = LoaderPosition.from_state_dict(saved) if saved is not None else None
        self._train_loader = None

    def _batches_per_epoch(self, sampler: EpochShuffleSampler) -> int:
        """Batches an epoch of this run's train loader has (after ``trainer.limit_train_batches``)."""
        batch = self.process_batch_size
        per_epoch = sampler.per_replica // batch if self.drop_last else -(-sampler.per_replica // batch)
        limit = self.trainer.limit_train_batches if self.trainer is not None else None
        if isinstance(limit, int):
            per_epoch = min(per_epoch, limit)
        elif limit is not None:
            per_epoch = int(per_epoch * limit)
        return per_epoch

    def _start_position(self, sampler: EpochShuffleSampler) -> LoaderPosition | None:
        """Where a new train loader starts: None (the beginning) for a fresh run, else the saved position.

        An epoch whose batches were all taken continues with the next one rather than with its leftover items.
        """
        position = self._restored_position
        if position is None:
            if self.trainer is None or self.trainer.global_step == 0:
                return None
            position = self._position_from_global_step(sampler)
        if position.items >= min(self._batches_per_epoch(sampler) * self.process_batch_size, sampler.per_replica):
            return LoaderPosition(position.epoch + 1, 0)
        return position

    def _position_from_global_step(self, sampler: EpochShuffleSampler) -> LoaderPosition:
        """The loader position of a run restored from a checkpoint that does not hold one (written before
        DataModules saved it), or of a train loader rebuilt mid-run (``reload_dataloaders_every_n_epochs``).

        One training step takes one batch, so ``global_step`` counts batches; epochs are as long as this
        run's loader (after ``trainer.limit_train_batches``).
        """
        assert self.trainer is not None
        per_epoch = self._batches_per_epoch(sampler)
        epoch = self.trainer.current_epoch
        done = self.trainer.global_step - epoch * per_epoch
        return LoaderPosition(epoch, max(0, done) * self.process_batch_size)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of the train set (its ``train_fraction``): (B, channels, image_size, image_size) float32,
        (B,) int64."""
        train_set, _ = self._require_setup()
        if self.train_fraction is not None:
            train_set = TrainSubset(train_set, subset_indices(len(train_set), self.train_fraction))  # type: ignore[arg-type]
            if self._processes()[1] == 0:
                log.info("training on %d images: data.train_fraction=%g", len(train_set), self.train_fraction)
        n = len(train_set)  # type: ignore[arg-type]
        if self.drop_last and n < self.batch_size:
            # Otherwise every epoch would silently be empty.
            raise DataError(
                f"the train set has {n} images, fewer than data.batch_size={self.batch_size}: "
                f"lower data.batch_size or set data.drop_last=false"
            )
        # Checked here, before any batch, so a batch that does not split fails at once.
        self.process_batch_size  # noqa: B018
        return self._loader(train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        """Batches of the val set in a fixed order, no augmentation, last partial batch kept."""
        _, val_set = self._require_setup()
        return self._loader(val_set, train=False)
