"""On-disk cache of real-image statistics, so later evaluations only pass generated images.

One file per (dataset, split, resolution, channels, number of images, extractor weights, statistics), with
all of these in its name, e.g. ``fmnist-val-32px-1ch-all-classifier_1a2b3c4d-fid+kid.pt``. The statistics part
names the states the file holds (:data:`ganzoo.metrics.feature_metrics.REAL_STATES`): ``fid``, FID's sums, and
``kid``, the real features themselves, stored once for KID and for precision/recall/density/coverage alike (so
adding ``prdc`` to an evaluation with KID reuses its file). The file also records a fingerprint of the data; a
file whose key or fingerprint does not match is reported and recomputed, never used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

import ganzoo
from ganzoo.checkpoint import save_atomic

log = logging.getLogger(__name__)


def statistics_key(
    dataset: str, split: str, image_size: int, channels: int, num_real: int | None, extractor: str, stats: list[str]
) -> str:
    """The cache key (and file stem) of one set of real statistics; ``stats`` names the states it holds (``fid``,
    ``kid``)."""
    count = "all" if num_real is None else str(num_real)
    return f"{dataset}-{split}-{image_size}px-{channels}ch-{count}-{extractor}-{'+'.join(stats)}"


class RealStatisticsCache:
    """Real statistics under ``<cache_dir>/real_statistics/<key>.pt`` (written atomically, read weights-only)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.folder = Path(cache_dir) / "real_statistics"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.pt"

    def load(self, key: str, fingerprint: str | None) -> dict[str, torch.Tensor] | None:
        """The cached states for ``key``, or None (missing, unreadable, or made from other data: said in the log)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated by a crash elsewhere, or not ours: recompute
            log.warning("real statistics %s are unreadable (%s): recomputing them", path, type(e).__name__)
            return None
        if not isinstance(saved, dict) or saved.get("key") != key:
            log.warning("real statistics %s were saved for another key (%s): recomputing them", path, saved.get("key"))
            return None
        if saved.get("fingerprint") != fingerprint:
            log.warning("real statistics %s are stale (the data has changed since): recomputing them", path)
            return None
        return saved["state"]

    def save(self, key: str, fingerprint: str | None, state: dict[str, torch.Tensor]) -> Path:
        path = self.path(key)
        cpu_state = {k: v.detach().cpu() for k, v in state.items()}
        save_atomic({"key": key, "fingerprint": fingerprint, "state": cpu_state, "version": ganzoo.__version__}, path)
        return path
