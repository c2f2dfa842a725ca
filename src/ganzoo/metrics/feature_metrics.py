"""torchmetrics' FID, KID and IS, class statistics, and precision, recall, density and coverage, all fed from a
single extractor pass per batch.

torchmetrics runs its own feature network inside every metric; here each metric gets a pass-through
"network", and the extractor runs once for all of them. The numbers are torchmetrics' own formulas on the
same features, so they equal what ``FrechetInceptionDistance(feature=extractor)`` etc. compute; precision,
recall, density and coverage are :mod:`ganzoo.metrics.prdc`'s, on the features KID uses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from ganzoo.compat import (
    empty_fid_real_statistics,
    fid_real_statistics,
    set_fid_real_statistics,
    set_kid_real_features,
    set_kid_subset_size,
)
from ganzoo.distributed import all_reduce, gather_rows
from ganzoo.errors import ConfigError
from ganzoo.metrics.class_statistics import ClassStatistics
from ganzoo.metrics.extractors import FeatureExtractor
from ganzoo.metrics.prdc import DEFAULT_CHUNK_SIZE, RealManifold

log = logging.getLogger(__name__)

#: Metric names accepted in configs, and the values each one produces.
OUTPUTS = {
    "fid": ("fid",),
    "kid": ("kid", "kid_std"),
    "is": ("is", "is_std"),
    "classes": ("class_coverage", "class_entropy", "class_accuracy"),
    "prdc": ("precision", "recall", "density", "coverage"),
}
METRICS = tuple(OUTPUTS)

#: The real-side states a metric needs, named as in the real-statistics cache key: ``fid`` (FID's sums) or ``kid``
#: (the real features themselves, one copy, which precision/recall/density/coverage share with KID).
REAL_STATES = {"fid": "fid", "kid": "kid", "prdc": "kid"}


class _Precomputed(nn.Module):
    """The feature "network" of the torchmetrics metrics: features were already extracted."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class FeatureMetrics(nn.Module):
    """The chosen ``metrics`` over one ``extractor`` (already prepared).

    Real images enter once (:meth:`update_real`, or :meth:`load_real_state` from a cache); generated images
    through :meth:`update_fake`; :meth:`compute` returns ``{"fid": ..., "kid": ..., "kid_std": ..., "is": ...,
    "is_std": ..., "class_coverage": ..., "class_entropy": ..., "class_accuracy": ..., "precision": ...,
    "recall": ..., "density": ..., "coverage": ...}`` for those chosen (``prdc`` gives the last four, see
    :mod:`ganzoo.metrics.prdc`; ``precision_recall_k`` and ``density_coverage_k`` are their k, ``prdc_chunk_size``
    the rows of distances computed at once). Under DDP every process must call :meth:`compute` (the states are
    gathered there).

    KID and prdc use every real and every generated feature: all the generated ones of every process are gathered
    once per :meth:`compute`, and the process that holds the real features computes both and hands the numbers to
    the others. The real features are kept once for both, and prdc's real k-NN radii are computed once per
    :meth:`load_real_state` (:attr:`real_manifold`), not per evaluation. With k or fewer images on a side, prdc's
    values are NaN (said in the log).
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        metrics: Iterable[str] = ("fid",),
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        precision_recall_k: int = 3,
        density_coverage_k: int = 5,
        prdc_chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        self.names = tuple(metrics)
        unknown = sorted(set(self.names) - set(METRICS))
        if unknown or not self.names:
            raise ConfigError(f"unknown metrics {unknown or '[]'}: choose from {list(METRICS)}, e.g. [fid, kid]")
        needs_logits = {"is", "classes"} & set(self.names)
        if needs_logits and not extractor.num_logits:
            raise extractor.logits_error(sorted(needs_logits))
        self.extractor = extractor
        features = extractor.num_features
        self.fid = FrechetInceptionDistance(feature=_Precomputed(features)) if "fid" in self.names else None
        # KID gets every process's features from compute(), already gathered: it must not gather them again.
        self.kid = (
            KernelInceptionDistance(
                feature=_Precomputed(features), subsets=kid_subsets, subset_size=kid_subset_size, sync_on_compute=False
            )
            if "kid" in self.names
            else None
        )
        self.kid_subset_size = kid_subset_size
        self.inception_score = (
            InceptionScore(feature=_Precomputed(extractor.num_logits), splits=is_splits) if "is" in self.names else None
        )
        self.classes = ClassStatistics(extractor.num_logits) if "classes" in self.names else None
        self.prdc = "prdc" in self.names
        self.prdc_settings = {
            "precision_recall_k": precision_recall_k,
            "density_coverage_k": density_coverage_k,
            "chunk_size": prdc_chunk_size,
        }
        #: The real features with their k-NN radii, on the process that holds the real features, after prdc's first
        #: :meth:`compute` since the last :meth:`load_real_state`; None before.
        self.real_manifold: RealManifold | None = None
        self._keeps_real_features = self.kid is not None or self.prdc
        self._said_too_few = False
        self._real_state: dict[str, torch.Tensor] | None = None
        # Features are collected here and handed over as one block per process: IS keeps its features in a list
        # state that DDP gathers element by element, which needs the same number of elements on every process,
        # and gathered blocks stay in sample order (process 0 first).
        self._real_features: list[torch.Tensor] = []
        self._fake_features: list[torch.Tensor] = []
        self._fake_logits: list[torch.Tensor] = []
        self._num_fake = 0

    # ------------------------------------------------------------------------------ real
    @torch.no_grad()
    def update_real(self, images: torch.Tensor) -> None:
        """Add real images, uint8 (N, C, H, W), to the real-side states."""
        features, _ = self.extractor(images.to(self.device))
        if self.fid is not None:
            self.fid.update(features, real=True)
        if self._keeps_real_features:
            self._real_features.append(features)

    def real_state(self) -> dict[str, torch.Tensor]:
        """The real-side states gathered over all processes (what the real-statistics cache stores), by
        ``<metric>.<state>``: ``fid.real_features_sum``, ... (see :func:`ganzoo.compat.fid_real_statistics`) and
        ``kid.real_features`` (N, D), the real features KID and prdc share. Every process must call it."""
        state: dict[str, torch.Tensor] = {}
        if self.fid is not None:
            with self.fid.sync_context():
                state.update({f"fid.{name}": value for name, value in fid_real_statistics(self.fid).items()})
        if self._keeps_real_features:
            state["kid.real_features"] = gather_rows(self._block(self._real_features, self.extractor.num_features))
            self._real_features.clear()
        return state

    def _block(self, tensors: list[torch.Tensor], width: int) -> torch.Tensor:
        return torch.cat(tensors) if tensors else torch.zeros(0, width, device=self.device)

    def empty_real_state(self) -> dict[str, torch.Tensor]:
        """Real-side states holding no images, shaped like :meth:`real_state`'s."""
        dim = self.extractor.num_features
        state: dict[str, torch.Tensor] = {}
        if self.fid is not None:
            state.update({f"fid.{name}": value for name, value in empty_fid_real_statistics(dim).items()})
        if self._keeps_real_features:
            state["kid.real_features"] = torch.zeros(0, dim)
        return state

    def load_real_state(self, state: dict[str, torch.Tensor]) -> None:
        """Use ``state`` (from :meth:`real_state`) as the real side, now and after every :meth:`reset`.

        Under DDP exactly one process should load the real statistics and the others
        :meth:`empty_real_state`, because FID sums the states of all processes when it computes, and KID and prdc
        are computed by the process holding the real features.
        """
        self._real_state = {k: v.to(self.device) for k, v in state.items()}
        self.real_manifold = None  # radii of other real features
        self._inject_real()

    def _inject_real(self) -> None:
        if self._real_state is None:
            return
        if self.fid is not None:
            prefix = "fid."
            set_fid_real_statistics(
                self.fid, {k.removeprefix(prefix): v for k, v in self._real_state.items() if k.startswith(prefix)}
            )
        if self.kid is not None:
            set_kid_real_features(self.kid, self._real_state["kid.real_features"])

    @property
    def num_real(self) -> int:
        """Number of real images behind the real statistics this process loaded."""
        if self._real_state is None:
            return 0
        if "fid.real_features_num_samples" in self._real_state:
            return int(self._real_state["fid.real_features_num_samples"])
        return len(self._real_state["kid.real_features"])

    # ------------------------------------------------------------------------------ fake
    @torch.no_grad()
    def update_fake(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Add generated images, uint8 (N, C, H, W), and the classes they were generated for (or None)."""
        features, logits = self.extractor(images.to(self.device))
        if self.fid is not None:
            self.fid.update(features, real=False)
        if self.kid is not None or self.prdc:
            self._fake_features.append(features)
        if self.inception_score is not None:
            self._fake_logits.append(logits)
        if self.classes is not None:
            self.classes.update(logits, labels)
        self._num_fake += len(images)

    @torch.no_grad()
    def compute(self, seed: int = 0) -> dict[str, float]:
        """All chosen metrics over every process's images; ``seed`` fixes KID's subsets and IS's splits."""
        values: dict[str, float] = {}
        if self.fid is not None:
            values["fid"] = float(self.fid.compute())
        if self.kid is not None or self.prdc:
            values.update(self._compute_on_all_features(seed))
        if self.inception_score is not None:
            # IS's splits come from the global CPU generator: seeded, and restored afterwards.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.inception_score.update(self._block(self._fake_logits, self.extractor.num_logits))
                self._fake_logits.clear()
                mean, std = self.inception_score.compute()
                values["is"], values["is_std"] = float(mean), float(std)
        if self.classes is not None:
            values.update({k: float(v) for k, v in self.classes.compute().items()})
        return values

    def _compute_on_all_features(self, seed: int) -> dict[str, float]:
        """KID and prdc over all real and all generated features (every process calls this)."""
        num_real, num_fake, holders = all_reduce(
            torch.tensor([self.num_real, self._num_fake, int(self.num_real > 0)], device=self.device)
        ).tolist()
        if holders != 1:  # the same sums on every process, so all of them stop here
            raise RuntimeError(
                f"{holders} processes hold real features: load the real statistics on exactly one process "
                "(load_real_state) and empty_real_state() on the others"
            )
        fake = gather_rows(self._block(self._fake_features, self.extractor.num_features))
        self._fake_features.clear()
        names = [*(OUTPUTS["kid"] if self.kid is not None else ()), *(OUTPUTS["prdc"] if self.prdc else ())]
        shared = torch.zeros(len(names), dtype=torch.float64, device=self.device)
        if self.num_real > 0:  # the process holding the real features
            values: dict[str, float] = {}
            if self.kid is not None:
                # KID's subsets come from the global CPU generator: seeded, and restored afterwards.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    set_kid_subset_size(self.kid, min(self.kid_subset_size, num_real, num_fake))
                    self.kid.update(fake, real=False)
                    values["kid"], values["kid_std"] = (float(value) for value in self.kid.compute())
            if self.prdc:
                values.update(self._prdc(fake, num_real, num_fake))
            shared = torch.tensor([values[name] for name in names], dtype=torch.float64, device=self.device)
        # Adding the others' zeros is exact: every process ends with the holder's numbers.
        return dict(zip(names, all_reduce(shared).tolist(), strict=True))

    def _prdc(self, fake: torch.Tensor, num_real: int, num_fake: int) -> dict[str, float]:
        """prdc of all generated features against the real ones, whose radii the first call computes; NaN (said in
        the log, once) when a side has no k-th nearest neighbour."""
        pr_k, dc_k = self.prdc_settings["precision_recall_k"], self.prdc_settings["density_coverage_k"]
        if num_real <= max(pr_k, dc_k) or num_fake <= pr_k:
            if not self._said_too_few:
                # A smoke run or a tiny folder still gets its other metrics, so no error; but no silent gap either.
                log.warning(
                    "precision/recall/density/coverage are NaN: they need more than %d real and %d generated images, "
                    "got %d and %d (metrics.evaluation.num_real and num_samples)",
                    max(pr_k, dc_k), pr_k, num_real, num_fake,
                )  # fmt: skip
                self._said_too_few = True
            return dict.fromkeys(OUTPUTS["prdc"], math.nan)
        if self.real_manifold is None:
            assert self._real_state is not None  # this process holds the real features
            self.real_manifold = RealManifold(
                self._real_state["kid.real_features"], pr_k, dc_k, self.prdc_settings["chunk_size"]
            )
        return self.real_manifold.compare(fake)

    def reset(self) -> None:
        """Forget the generated images (the real statistics stay)."""
        for metric in (self.fid, self.kid, self.inception_score, self.classes):
            if metric is not None:
                metric.reset()
        self._real_features.clear()
        self._fake_features.clear()
        self._fake_logits.clear()
        self._num_fake = 0
        self._inject_real()

    @property
    def device(self) -> torch.device:
        for tensor in self.extractor.parameters():
            return tensor.device
        return torch.device("cpu")
