"""torchmetrics' FID, KID and IS (and class statistics) fed from a single extractor pass per batch.

torchmetrics runs its own feature network inside every metric; here each metric gets a pass-through
"network", and the extractor runs once for all of them. The numbers are torchmetrics' own formulas on the
same features, so they equal what ``FrechetInceptionDistance(feature=extractor)`` etc. compute.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from ganzoo.compat import (
    empty_fid_real_statistics,
    fid_real_statistics,
    kid_real_features,
    set_fid_real_statistics,
    set_kid_real_features,
    set_kid_subset_size,
)
from ganzoo.distributed import sum_over_processes
from ganzoo.errors import ConfigError
from ganzoo.metrics.class_statistics import ClassStatistics
from ganzoo.metrics.extractors import FeatureExtractor

#: Metric names accepted in configs, and the values each one produces.
OUTPUTS = {
    "fid": ("fid",),
    "kid": ("kid", "kid_std"),
    "is": ("is", "is_std"),
    "classes": ("class_coverage", "class_entropy", "class_accuracy"),
}
METRICS = tuple(OUTPUTS)


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
    "is_std": ..., "class_coverage": ..., "class_entropy": ..., "class_accuracy": ...}`` for those chosen.
    Under DDP every process must call :meth:`compute` (the states are gathered there).
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        metrics: Iterable[str] = ("fid",),
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
    ) -> None:
        super().__init__()
        self.names = tuple(metrics)
        unknown = sorted(set(self.names) - set(METRICS))
        if unknown or not self.names:
            raise ConfigError(f"unknown metrics {unknown or '[]'}: choose from {list(METRICS)}, e.g. [fid, kid]")
        needs_logits = {"is", "classes"} & set(self.names)
        if needs_logits and not extractor.num_logits:
            raise ConfigError(f"{sorted(needs_logits)} need class logits, which the {extractor.name} extractor lacks")
        self.extractor = extractor
        features = extractor.num_features
        self.fid = FrechetInceptionDistance(feature=_Precomputed(features)) if "fid" in self.names else None
        self.kid = (
            KernelInceptionDistance(feature=_Precomputed(features), subsets=kid_subsets, subset_size=kid_subset_size)
            if "kid" in self.names
            else None
        )
        self.kid_subset_size = kid_subset_size
        self.inception_score = (
            InceptionScore(feature=_Precomputed(extractor.num_logits), splits=is_splits) if "is" in self.names else None
        )
        self.classes = ClassStatistics(extractor.num_logits) if "classes" in self.names else None
        self._real_state: dict[str, torch.Tensor] | None = None
        # KID and IS keep their features in list states that DDP gathers element by element, which needs the
        # same number of elements on every process. So features are collected here and handed over as one
        # block per process, which also keeps the gathered blocks in sample order (process 0 first).
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
        if self.kid is not None:
            self._real_features.append(features)

    def real_state(self) -> dict[str, torch.Tensor]:
        """The real-side states gathered over all processes (what the real-statistics cache stores), by
        ``<metric>.<state>``: ``fid.real_features_sum``, ... (see :func:`ganzoo.compat.fid_real_statistics`) and
        ``kid.real_features`` (N, D)."""
        state: dict[str, torch.Tensor] = {}
        if self.fid is not None:
            with self.fid.sync_context():
                state.update({f"fid.{name}": value for name, value in fid_real_statistics(self.fid).items()})
        if self.kid is not None:
            self.kid.update(self._block(self._real_features, self.extractor.num_features), real=True)
            self._real_features.clear()
            with self.kid.sync_context():
                state["kid.real_features"] = kid_real_features(self.kid)
        return state

    def _block(self, tensors: list[torch.Tensor], width: int) -> torch.Tensor:
        return torch.cat(tensors) if tensors else torch.zeros(0, width, device=self.device)

    def empty_real_state(self) -> dict[str, torch.Tensor]:
        """Real-side states holding no images, shaped like :meth:`real_state`'s."""
        dim = self.extractor.num_features
        state: dict[str, torch.Tensor] = {}
        if self.fid is not None:
            state.update({f"fid.{name}": value for name, value in empty_fid_real_statistics(dim).items()})
        if self.kid is not None:
            state["kid.real_features"] = torch.zeros(0, dim)
        return state

    def load_real_state(self, state: dict[str, torch.Tensor]) -> None:
        """Use ``state`` (from :meth:`real_state`) as the real side, now and after every :meth:`reset`.

        Under DDP exactly one process should load the real statistics and the others
        :meth:`empty_real_state`, because the metrics sum (FID) or concatenate (KID) the states of all
        processes when they compute.
        """
        self._real_state = {k: v.to(self.device) for k, v in state.items()}
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
        if self.kid is not None:
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
        # KID's subsets and IS's splits come from the global CPU generator: seeded, and restored afterwards.
        with torch.random.fork_rng(devices=[]):
            if self.kid is not None:
                torch.manual_seed(seed)
                num_real = sum_over_processes(self.num_real, self.device)
                num_fake = sum_over_processes(self._num_fake, self.device)
                set_kid_subset_size(self.kid, min(self.kid_subset_size, num_real, num_fake))
                self.kid.update(self._block(self._fake_features, self.extractor.num_features), real=False)
                self._fake_features.clear()
                mean, std = self.kid.compute()
                values["kid"], values["kid_std"] = float(mean), float(std)
            if self.inception_score is not None:
                torch.manual_seed(seed)
                self.inception_score.update(self._block(self._fake_logits, self.extractor.num_logits))
                self._fake_logits.clear()
                mean, std = self.inception_score.compute()
                values["is"], values["is_std"] = float(mean), float(std)
        if self.classes is not None:
            values.update({k: float(v) for k, v in self.classes.compute().items()})
        return values

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
