"""Evaluation of a generator: the configured metrics over N generated images against cached real statistics.

Used the same way by the training callback (every N steps, under DDP) and by ``python -m ganzoo.evaluate``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset

from ganzoo.distributed import process_info, shard, sum_over_processes
from ganzoo.errors import ConfigError, ganzoo_cause
from ganzoo.images import to_uint8
from ganzoo.metrics.classifier import has_labels, require_labels
from ganzoo.metrics.extractors import ClassifierFeatures, FeatureExtractor
from ganzoo.metrics.feature_metrics import OUTPUTS, REAL_STATES, FeatureMetrics
from ganzoo.metrics.inception import InceptionWeightsError
from ganzoo.metrics.paired import PAIRED_METRICS, PairedMetrics
from ganzoo.metrics.real_statistics import RealStatisticsCache, statistics_key
from ganzoo.sampling import (
    ImageToImage,
    NoiseToImage,
    check_truncation,
    cycled_classes,
    fixed_latents,
    generate_in_batches,
)

log = logging.getLogger(__name__)


def _positive_int(name: str, value: Any, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"metrics.evaluation.{name} must be a positive integer, got {value!r}: e.g. {example}")
    return value


class Evaluation:
    """The metrics of one extractor over ``num_samples`` generated images against a real split.

    Args:
        extractor: a :class:`~ganzoo.metrics.extractors.FeatureExtractor` (Inception, or a classifier).
        metrics: any of ``fid``, ``kid``, ``is``, ``classes``, ``prdc`` (precision, recall, density and coverage,
            see :mod:`ganzoo.metrics.prdc`) on the extractor's features, and for a translation model on paired data
            ``l1``, ``psnr``, ``ssim`` (each output against its own target, see
            :class:`~ganzoo.metrics.paired.PairedMetrics`; keys without the extractor's name: ``val/psnr``).
        num_samples: generated images per evaluation, in total over all DDP processes (each generates its share).
        batch_size: images per generator and extractor batch.
        real_split: ``train`` or ``val`` split of the run's DataModule, without augmentation.
        num_real: use the first ``num_real`` images of the split; None for all of them.
        seed: seeds the latents (the same images every evaluation, so curves show the model, not the noise) and
            KID's subsets and IS's splits.
        cache_dir: real statistics and trained evaluators are cached below it.
        prefix: key prefix; keys read ``<prefix>/<metric>_<extractor name>``, e.g. ``val/fid_fmnist``.
        kid_subsets, kid_subset_size, is_splits: torchmetrics' KID and IS settings (subset size is capped at
            the number of images).
        precision_recall_k, density_coverage_k: the k of the k-NN balls of precision and recall (3, as in
            Kynkäänniemi et al. 2019) and of density and coverage (5, as in Naeem et al. 2020). They compare all
            ``num_samples`` generated images with all real ones (the papers use equal numbers of both);
            :meth:`protocol` records the counts. With k or fewer images on a side they are NaN (said in the log).
        truncation: truncation threshold of the latents (BigGAN's FID/IS at a truncation); None: untruncated.

    :meth:`protocol` says how the numbers were measured (extractor, counts, settings), for reports and run configs.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        metrics: Iterable[str] = ("fid",),
        num_samples: int = 10000,
        batch_size: int = 250,
        real_split: str = "train",
        num_real: int | None = None,
        seed: int = 0,
        cache_dir: str = "data/cache",
        prefix: str = "val",
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        precision_recall_k: int = 3,
        density_coverage_k: int = 5,
        truncation: float | None = None,
    ) -> None:
        if real_split not in ("train", "val"):
            raise ConfigError(f"metrics.evaluation.real_split={real_split!r}: use train or val")
        self.extractor = extractor
        self.metric_names = list(metrics)
        self.feature_metric_names = [name for name in self.metric_names if name not in PAIRED_METRICS]
        self.paired_metric_names = [name for name in self.metric_names if name in PAIRED_METRICS]
        if not self.feature_metric_names:
            raise ConfigError(
                f"metrics.evaluation.metrics={self.metric_names} needs one of fid, kid, is, classes or prdc besides "
                "the paired metrics: e.g. [fid, l1, psnr, ssim]"
            )
        self.num_samples = _positive_int("num_samples", num_samples, 10000)
        self.batch_size = _positive_int("batch_size", batch_size, 250)
        self.real_split = real_split
        self.num_real = None if num_real is None else _positive_int("num_real", num_real, 10000)
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        self.prefix = prefix
        self.truncation = check_truncation(truncation)
        self.metric_options = {
            "kid_subsets": kid_subsets,
            "kid_subset_size": kid_subset_size,
            "is_splits": is_splits,
            "precision_recall_k": _positive_int("precision_recall_k", precision_recall_k, 3),
            "density_coverage_k": _positive_int("density_coverage_k", density_coverage_k, 5),
        }
        self.metrics: FeatureMetrics | None = None
        self.paired_metrics: PairedMetrics | None = None
        self.datamodule: Any = None
        self.image_shape: tuple[int, int, int] | None = None
        #: The real-statistics cache file (written or read) of the last setup.
        self.statistics_file: Path | None = None
        #: The number of real images the last setup used.
        self.real_count: int | None = None
        #: The number of images the last evaluation measured (None before the first).
        self.generated_count: int | None = None

    @property
    def name(self) -> str:
        return self.extractor.name

    def key(self, metric: str) -> str:
        """The logged name of ``metric``: ``<prefix>/<metric>_<extractor>``, or ``<prefix>/<metric>`` for a paired
        metric, which uses no extractor."""
        return f"{self.prefix}/{metric}" if metric in PAIRED_METRICS else f"{self.prefix}/{metric}_{self.name}"

    def output_keys(self) -> list[str]:
        """Every key this evaluation can produce (``class_accuracy`` only for class-conditional models)."""
        keys = [self.key(value) for name in self.feature_metric_names for value in OUTPUTS.get(name, ())]
        return keys + [self.key(name) for name in self.paired_metric_names]

    def protocol(self, model: NoiseToImage | ImageToImage | None = None) -> dict[str, Any]:
        """How every number of this evaluation is measured, as a flat JSON-ready dict (after :meth:`setup`).

        ``extractor`` (the name in the keys), ``extractor_identity`` (it includes a digest of the weights), ``resize``
        (how images reach the extractor's input size), ``num_generated`` (images per evaluation, all processes
        together: those of ``model`` when given, as a translation model translates at most its split's images,
        else those of the last evaluation, else ``num_samples``), ``real_data``, ``real_split`` and ``num_real``
        (the real images compared with; 0 when no metric uses real statistics), ``metrics``, the settings of the
        chosen ones (``kid_subsets`` and the ``kid_subset_size`` in effect, ``is_splits``, ``precision_recall_k``
        and ``density_coverage_k``), ``truncation`` and ``seed``.
        """
        if self.datamodule is None or self.real_count is None:
            raise RuntimeError("Evaluation.setup() must run first")
        if isinstance(model, ImageToImage):
            generated = min(self.num_samples, len(self.datamodule.domain_dataset("A", self.real_split)))
        elif isinstance(model, NoiseToImage) or self.generated_count is None:
            generated = self.num_samples
        else:
            generated = self.generated_count
        options = self.metric_options
        settings: dict[str, Any] = {}
        if "kid" in self.metric_names:
            subset_size = min(options["kid_subset_size"], self.real_count, generated)
            settings.update(kid_subsets=options["kid_subsets"], kid_subset_size=subset_size)
        if "is" in self.metric_names:
            settings["is_splits"] = options["is_splits"]
        if "prdc" in self.metric_names:
            settings.update({name: options[name] for name in ("precision_recall_k", "density_coverage_k")})
        return {
            "extractor": self.name,
            "extractor_identity": self.extractor.identity(),
            "resize": getattr(self.extractor, "resize", "none"),
            "num_generated": generated,
            "real_data": self.datamodule.name,
            "real_split": self.real_split,
            "num_real": self.real_count,
            "metrics": list(self.metric_names),
            **settings,
            "truncation": self.truncation,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------------------ setup
    def setup(self, datamodule: Any, device: torch.device | str) -> None:
        """Prepare the extractor and the real statistics (from the cache, or computed and cached).

        Under DDP every process calls this; the real images are split over the processes.
        """
        if not getattr(datamodule, "paired", False):  # before the extractor's (possibly slow) preparation
            self._without_pairs(f"data={datamodule.name}")
        self.datamodule = datamodule
        self.extractor.prepare(datamodule, self.cache_dir, device)
        self.metrics = FeatureMetrics(self.extractor, self.feature_metric_names, **self.metric_options).to(device)
        if self.paired_metric_names:
            self.paired_metrics = PairedMetrics(self.paired_metric_names, datamodule.image_size).to(device)
        self.image_shape = (datamodule.channels, datamodule.image_size, datamodule.image_size)
        world_size = process_info()[0]
        dataset = datamodule.eval_dataset(self.real_split)
        n = len(dataset) if self.num_real is None else min(self.num_real, len(dataset))
        if n < max(2, world_size):
            raise ConfigError(
                f"the {self.real_split} split of {datamodule.name} has {n} images, too few for real statistics: "
                "use another split or more data"
            )
        needed = {REAL_STATES[name] for name in self.feature_metric_names if name in REAL_STATES}
        stats = [name for name in ("fid", "kid") if name in needed]
        self.real_count = n if stats else 0
        if stats:  # IS and class statistics use generated images only
            self._real_statistics(datamodule, dataset, n, stats, device)

    def _real_statistics(self, datamodule: Any, dataset: Any, n: int, stats: list[str], device: Any) -> None:
        """Load the real statistics of the first ``n`` images of ``dataset`` from the cache, or compute them."""
        assert self.metrics is not None
        world_size, rank = process_info()
        count = None if n == len(dataset) else n
        key = statistics_key(
            datamodule.name, self.real_split, datamodule.image_size, datamodule.channels, count,
            self.extractor.identity(), stats,
        )  # fmt: skip
        cache = RealStatisticsCache(self.cache_dir)
        self.statistics_file = cache.path(key)
        fingerprint = datamodule.fingerprint(self.real_split) if rank == 0 else None
        # Only process 0 holds real statistics (see FeatureMetrics.load_real_state), so only it reads the cache.
        state = cache.load(key, fingerprint) if rank == 0 else None
        if sum_over_processes(int(state is not None), device) == 0:
            log.info("computing real statistics of %d %s images (%s)", n, self.real_split, key)
            shard_set = Subset(dataset, list(shard(n, world_size, rank)))
            loader = DataLoader(shard_set, batch_size=self.batch_size, num_workers=datamodule.num_workers)
            with torch.random.fork_rng(devices=[]):  # the loader draws a seed: leave the run's RNG untouched
                for images, _ in loader:
                    self.metrics.update_real(to_uint8(images))
            state = self.metrics.real_state()
            if rank == 0:
                cache.save(key, fingerprint, state)
        self.metrics.load_real_state(state if rank == 0 else self.metrics.empty_real_state())

    # ------------------------------------------------------------------------------ measuring
    def _measure(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor | None]]) -> dict[str, float]:
        if self.metrics is None:
            raise RuntimeError("Evaluation.setup() must run first")
        self.metrics.reset()
        if self.paired_metrics is not None:
            self.paired_metrics.reset()
        for images, labels in batches:
            if tuple(images.shape[1:]) != self.image_shape:
                c, s, _ = self.image_shape  # type: ignore[misc]
                raise ConfigError(
                    f"images of shape {tuple(images.shape[1:])} cannot be compared with the real statistics "
                    f"({c} channels, {s}px): set data.image_size and data.channels to match the generator"
                )
            self.metrics.update_fake(images, labels)
        values = self.metrics.compute(self.seed)
        if self.paired_metrics is not None:
            values.update(self.paired_metrics.compute())
        return {self.key(name): value for name, value in values.items()}

    def evaluate(self, model: NoiseToImage | ImageToImage) -> dict[str, float]:
        """Metrics of ``model``: of its samples (:meth:`evaluate_samples`) or, for an
        :class:`~ganzoo.sampling.ImageToImage` model (CycleGAN), of its A-to-B translations
        (:meth:`evaluate_translations`)."""
        if isinstance(model, ImageToImage):
            return self.evaluate_translations(model)
        if isinstance(model, NoiseToImage):
            return self.evaluate_samples(model)
        raise TypeError(f"a {type(model).__name__} neither generates nor translates images: nothing to evaluate")

    def evaluate_translations(self, model: ImageToImage) -> dict[str, float]:
        """Metrics of the translations (in the model's first direction) of the first ``num_samples`` images of domain
        A's ``real_split``, against the real statistics of domain B (the DataModule's ``eval_dataset``).

        Class statistics judge each translation by the class it should have: the DataModule's ``target_class`` when
        it names one (Fashion-MNIST domains: every sneaker should become a boot), else the class label of its source
        image when the data has labels (Fashion-MNIST edges: an item's edges should become that item). On paired
        data the paired metrics compare each translation with the target of its pair. Under DDP each process
        translates its contiguous share.
        """
        if self.datamodule is None:
            raise RuntimeError("Evaluation.setup() must run first")
        world_size, rank = process_info()
        sources = self.datamodule.domain_dataset("A", self.real_split)
        n = self.generated_count = min(self.num_samples, len(sources))
        mine = list(shard(n, world_size, rank))
        targets = self.datamodule.domain_dataset("B", self.real_split) if self.paired_metrics is not None else None
        target_class = getattr(self.datamodule, "target_class", None)
        direction = model.directions[0]

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
            with torch.random.fork_rng(devices=[]):  # the loaders draw a seed: leave the run's RNG untouched
                pairs: Iterable[Any] = DataLoader(Subset(sources, mine), batch_size=self.batch_size)
                if targets is not None:
                    pairs = zip(pairs, DataLoader(Subset(targets, mine), batch_size=self.batch_size), strict=True)
                for batch in pairs:
                    (images, labels), target = batch if targets is not None else (batch, None)
                    translated = to_uint8(model.translate(images, direction))
                    if target is not None:  # targets are read exactly when there are paired metrics
                        self.paired_metrics.update(translated, to_uint8(target[0]))
                    if target_class is not None:
                        yield translated, torch.full((len(translated),), target_class)
                    else:
                        yield translated, labels if bool((labels >= 0).all()) else None

        return self._measure(batches())

    def evaluate_samples(self, model: NoiseToImage) -> dict[str, float]:
        """Metrics of ``num_samples`` images from ``model`` (through :mod:`ganzoo.sampling` only).

        The latents (and, for class-conditional models, the labels ``0, 1, ..., K-1, 0, ...``) are the same
        every call; under DDP process r generates its contiguous share of them, so the images are the same
        as in a single process. Every process must call this.
        """
        self._without_pairs("a noise-to-image model")
        world_size, rank = process_info()
        if self.num_samples < world_size:
            raise ConfigError(f"metrics.evaluation.num_samples={self.num_samples} is below the {world_size} processes")
        mine = shard(self.num_samples, world_size, rank)
        self.generated_count = self.num_samples
        share = slice(mine.start, mine.stop)
        latents = fixed_latents(self.num_samples, model.latent_dim, self.seed, self.truncation)[share]
        labels = cycled_classes(self.num_samples, model.num_classes)
        labels = labels[share] if labels is not None else None

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
            for images, batch_labels in generate_in_batches(model, latents, labels, self.batch_size):
                yield to_uint8(images), batch_labels

        return self._measure(batches())

    def _without_pairs(self, what: str) -> None:
        """A ConfigError when paired metrics are configured for ``what``, which has no targets to compare with."""
        if self.paired_metric_names:
            raise ConfigError(
                f"metrics.evaluation.metrics has {self.paired_metric_names}, which compare translations with their "
                f"targets, and {what} has none: remove them from metrics.evaluation.metrics"
            )

    def evaluate_images(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        """Metrics of given images, uint8 (N, C, H, W), with the classes they were generated for (or None)."""
        self._without_pairs("a folder of images")
        self.generated_count = len(images)

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
            for start in range(0, len(images), self.batch_size):
                stop = start + self.batch_size
                yield images[start:stop], labels[start:stop] if labels is not None else None

        return self._measure(batches())


def instantiate_for_data(config: DictConfig, datamodule: Any, *, training: bool) -> Any:
    """Build ``config`` (the ``metrics`` callback, or its ``evaluation``) after checking that its evaluator can
    work on ``datamodule``.

    An evaluator classifier needs labels (:func:`~ganzoo.metrics.classifier.require_labels`); Inception needs its
    weights file. Either failure is one line that names every choice that works for this data, before any work
    (``training``: whether training without evaluation, ``'~metrics'``, is one of them).
    """
    extractor = OmegaConf.select(config, "extractor._target_") or OmegaConf.select(
        config, "evaluation.extractor._target_", default=""
    )
    classifier = False
    with contextlib.suppress(Exception):  # an unknown class: instantiating it below reports that
        classifier = bool(extractor) and get_class(extractor) is ClassifierFeatures
    if classifier:
        require_labels(datamodule)
    try:
        return instantiate(config, _convert_="all")
    except Exception as e:
        cause = ganzoo_cause(e)
        if isinstance(cause, InceptionWeightsError):
            raise cause.for_run(labelled=has_labels(datamodule), training=training) from None
        raise
