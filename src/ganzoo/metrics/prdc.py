"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020) of
generated images, from k-nearest-neighbour balls around feature vectors.

Every feature vector is the centre of a ball whose radius is the Euclidean distance to its k-th nearest neighbour in
its own set (the vector itself not counted). With real features X (N, D) and fake features Y (M, D):

- **precision**: the share of fakes inside at least one real ball (radius: k = ``precision_recall_k``);
- **recall**: the share of reals inside at least one fake ball (the fakes' own radii, same k);
- **density**: the number of real balls (k = ``density_coverage_k``) that contain a fake, summed over the fakes and
  divided by k M; about 1 when the two sets come from one distribution, above 1 where fakes crowd the dense parts
  of the real data, below where they stray from it;
- **coverage**: the share of real balls (k = ``density_coverage_k``) that contain at least one fake.

The definitions are those of the papers' own code (kynkaat/improved-precision-and-recall-metric for precision and
recall, clovaai/generative-evaluation-prdc for density and coverage), including where they differ: a point exactly
on a ball's surface is inside for precision and recall, outside for density and coverage. Only exact ties, such as
duplicated images, tell the two apart.

The references compare equally many real and fake features; any counts work here. The balls shrink as their set
grows, and coverage rises with the number of fakes, so the values depend on both counts even for one generator:
compare values measured with the same counts (every evaluation records them, see
:meth:`ganzoo.metrics.Evaluation.protocol`).

Distances are computed ``chunk_size`` rows at a time on the features' device: a chunk holds
``chunk_size * max(N, M)`` distances (0.2 GB at the default 1024 rows against 50,000 features in float32), never an
N x N or N x M matrix. The real radii depend on the real features only: :class:`RealManifold` computes them once and
compares any number of fake sets with them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

#: Rows of distances computed at once (see the module docstring for the memory this takes).
DEFAULT_CHUNK_SIZE = 1024


@contextmanager
def _full_float32_matmuls() -> Iterator[None]:
    # Training may allow TF32 matmuls (10-bit mantissas) for speed; distances compared with radii need every bit of
    # float32, so that a point's side of a ball's surface does not depend on the GPU.
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _check_features(features: torch.Tensor, what: str, k: int) -> None:
    if features.dim() != 2 or not features.is_floating_point():
        raise ValueError(f"{what} must be a float matrix (N, D), got {features.dtype} {tuple(features.shape)}")
    if len(features) <= k:
        raise ValueError(f"{what}: {len(features)} rows have no {k}-th nearest neighbour; pass at least {k + 1}")


def _squared_distances(
    rows: torch.Tensor, rows_sq: torch.Tensor, others: torch.Tensor, others_sq: torch.Tensor
) -> torch.Tensor:
    """(R, C) squared Euclidean distances from ``|a|^2 + |b|^2 - 2 a.b``, given the rows' squared norms: one matmul,
    and the norms are computed once per set rather than once per chunk."""
    return torch.addmm(others_sq[None, :], rows, others.T, alpha=-2).add_(rows_sq[:, None]).clamp_min_(0)


def _squared_radii(
    features: torch.Tensor, squared_norms: torch.Tensor, ks: Sequence[int], chunk_size: int
) -> torch.Tensor:
    """(len(ks), N) squared k-NN radii (see :func:`knn_radii`)."""
    columns = torch.tensor(list(ks), device=features.device)
    radii = []
    with _full_float32_matmuls():
        for rows, rows_sq in zip(features.split(chunk_size), squared_norms.split(chunk_size), strict=True):
            distances = _squared_distances(rows, rows_sq, features, squared_norms)
            # The (k+1)-th smallest distance of a row: the row itself comes first, at distance 0.
            radii.append(distances.topk(max(ks) + 1, dim=1, largest=False).values[:, columns])
    return torch.cat(radii).T.contiguous()


def knn_radii(features: torch.Tensor, ks: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Each row's Euclidean distance to its k-th nearest other row, for every k in ``ks``.

    ``features`` (N, D) float with N > max(ks); returns (len(ks), N) in the features' dtype and device, >= 0. Rows
    are taken ``chunk_size`` at a time against all N.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"neighbour counts must be positive, got {list(ks)}")
    _check_features(features, "features", max(ks))
    return _squared_radii(features, features.pow(2).sum(dim=1), ks, chunk_size).sqrt_()


class RealManifold:
    """Real features and their k-NN radii (computed here, once), against which fake feature sets are measured.

    Args:
        real: real features (N, D), float, on the device the distances are computed on; kept, not copied (do not
            change it in place).
        precision_recall_k: the k of precision's and recall's balls (3, as in Kynkäänniemi et al.).
        density_coverage_k: the k of density's and coverage's balls (5, as in Naeem et al.).
        chunk_size: rows of distances computed at once.
    """

    def __init__(
        self,
        real: torch.Tensor,
        precision_recall_k: int = 3,
        density_coverage_k: int = 5,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if min(precision_recall_k, density_coverage_k) < 1:
            raise ValueError(f"neighbour counts must be positive, got {precision_recall_k} and {density_coverage_k}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        _check_features(real, "real features", max(precision_recall_k, density_coverage_k))
        self.real = real
        self.precision_recall_k = precision_recall_k
        self.density_coverage_k = density_coverage_k
        self.chunk_size = chunk_size
        self._squared_norms = real.pow(2).sum(dim=1)
        # Squared, as the distances they are compared with: no square root of N x M distances.
        self._squared_radii = _squared_radii(
            real, self._squared_norms, (precision_recall_k, density_coverage_k), chunk_size
        )

    @property
    def radii(self) -> torch.Tensor:
        """(2, N): each real feature's distance to its ``precision_recall_k``-th and its ``density_coverage_k``-th
        nearest real neighbour."""
        return self._squared_radii.sqrt()

    def compare(self, fake: torch.Tensor) -> dict[str, float]:
        """``precision``, ``recall`` and ``coverage`` in [0, 1] and ``density`` >= 0 (about 1 for fakes from the
        real distribution) of ``fake`` features (M, D), M > ``precision_recall_k``, same D, dtype and device as the
        real ones."""
        _check_features(fake, "fake features", self.precision_recall_k)
        if fake.shape[1] != self.real.shape[1] or fake.dtype != self.real.dtype or fake.device != self.real.device:
            raise ValueError(
                f"fake features {fake.dtype} (M, {fake.shape[1]}) on {fake.device} cannot be compared with real "
                f"features {self.real.dtype} (N, {self.real.shape[1]}) on {self.real.device}"
            )
        fake_sq = fake.pow(2).sum(dim=1)
        fake_radii = _squared_radii(fake, fake_sq, (self.precision_recall_k,), self.chunk_size)[0]
        in_some_real_ball = torch.zeros(len(fake), dtype=torch.bool, device=fake.device)
        fakes_in_density_balls = torch.zeros((), dtype=torch.int64, device=fake.device)
        recalled, covered = [], []
        chunks = zip(
            self.real.split(self.chunk_size),
            self._squared_norms.split(self.chunk_size),
            self._squared_radii.split(self.chunk_size, dim=1),
            strict=True,
        )
        with _full_float32_matmuls():
            for rows, rows_sq, radii in chunks:
                distances = _squared_distances(rows, rows_sq, fake, fake_sq)  # (rows, M)
                in_some_real_ball |= (distances <= radii[0, :, None]).any(dim=0)
                # Density needs only the number of (real ball, fake) pairs, not a count per fake.
                fakes_in_density_balls += torch.count_nonzero(distances < radii[1, :, None])
                covered.append(distances.amin(dim=1) < radii[1])
                recalled.append((distances <= fake_radii).any(dim=1))
        return {
            "precision": in_some_real_ball.double().mean().item(),
            "recall": torch.cat(recalled).double().mean().item(),
            "density": fakes_in_density_balls.item() / (self.density_coverage_k * len(fake)),
            "coverage": torch.cat(covered).double().mean().item(),
        }


def precision_recall_density_coverage(
    real: torch.Tensor,
    fake: torch.Tensor,
    precision_recall_k: int = 3,
    density_coverage_k: int = 5,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """The four metrics of ``fake`` features (M, D) against ``real`` features (N, D): ``precision``, ``recall`` and
    ``coverage`` in [0, 1], ``density`` >= 0 (about 1 for identical distributions). For several fake sets against
    the same real features, a :class:`RealManifold` computes the real radii only once."""
    return RealManifold(real, precision_recall_k, density_coverage_k, chunk_size).compare(fake)
