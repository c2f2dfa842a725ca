"""Precision, recall, density and coverage: the reference implementations' numbers, chunked, and what they measure."""

from __future__ import annotations

import pytest
import torch
from prdc import compute_prdc
from torch_fidelity.metric_prc import calculate_precision_recall_part

from ganzoo.metrics.prdc import RealManifold, knn_radii, precision_recall_density_coverage


def clusters(n: int, centres: torch.Tensor, seed: int, spread: float = 1.0) -> torch.Tensor:
    """``n`` float64 points (n, D) around ``centres`` (C, D), taken in turn."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, centres.shape[1], generator=generator, dtype=torch.float64)
    return centres[torch.arange(n) % len(centres)] + spread * noise


CENTRES = 6.0 * torch.randn(10, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize(
    ("num_real", "num_fake", "chunk_size"),
    [(120, 120, 1024), (150, 70, 37), (64, 101, 1), (97, 97, 50)],
    ids=["equal-one-chunk", "more-real-uneven-chunks", "more-fake-row-by-row", "equal-uneven-chunks"],
)
def test_values_equal_the_reference_implementations(num_real: int, num_fake: int, chunk_size: int) -> None:
    real = clusters(num_real, CENTRES, seed=1)
    fake = clusters(num_fake, CENTRES[:6] + 1.5, seed=2, spread=1.3)  # overlaps part of the real data
    ours = precision_recall_density_coverage(real, fake, chunk_size=chunk_size)
    # clovaai/generative-evaluation-prdc (the density and coverage paper's code) with one k for all four.
    at_3 = compute_prdc(real.numpy(), fake.numpy(), nearest_k=3)
    at_5 = compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    expected = {
        "precision": at_3["precision"],
        "recall": at_3["recall"],
        **{k: at_5[k] for k in ("density", "coverage")},
    }
    assert ours == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-12)
    # torch-fidelity's precision and recall (features_1: the generated ones), averaged in float32.
    precision, recall = calculate_precision_recall_part(fake, real, neighborhood=3, batch_size=chunk_size)
    assert (ours["precision"], ours["recall"]) == pytest.approx((precision, recall), abs=1e-6)
    assert 0.1 < ours["precision"] < 0.9 and 0.1 < ours["recall"] < 0.9  # neither side of the comparison is trivial
    assert 0.1 < ours["coverage"] < 0.9 and ours["density"] > 0


def test_radii_are_distances_to_the_kth_nearest_other_point() -> None:
    points = clusters(50, CENTRES, seed=3)
    nearest = torch.cdist(points, points).sort(dim=1).values  # column 0: the point itself
    assert torch.allclose(knn_radii(points, (1, 3, 5), chunk_size=16), nearest[:, [1, 3, 5]].T)
    assert torch.allclose(RealManifold(points, 3, 5, chunk_size=7).radii, nearest[:, [3, 5]].T)


def test_a_mode_collapsed_generator_is_precise_but_recalls_and_covers_little() -> None:
    real = clusters(500, CENTRES, seed=4)
    collapsed = clusters(200, CENTRES[:1], seed=5, spread=0.5)  # every sample near one of the ten modes
    healthy = clusters(200, CENTRES, seed=6)
    manifold = RealManifold(real)
    bad, good = manifold.compare(collapsed), manifold.compare(healthy)
    assert bad["precision"] > 0.8 and good["precision"] > 0.8
    assert bad["recall"] < 0.15 < 0.8 < good["recall"]
    assert bad["coverage"] < 0.15 < 0.8 < good["coverage"]
    # Fakes piled into one mode crowd its real balls; a sample of the real distribution scores about 1.
    assert bad["density"] > 1.5 * good["density"] and good["density"] == pytest.approx(1.0, abs=0.2)


def test_identical_sets_are_precise_recalled_and_covered_with_density_one() -> None:
    real = clusters(80, CENTRES, seed=7)
    values = precision_recall_density_coverage(real, real.clone(), chunk_size=30)
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    # Each real ball holds its centre and 4 of its 5 nearest neighbours (the 5th lies on the surface): 5 fakes.
    assert values["density"] == pytest.approx(1.0, abs=0.03)


def test_float32_features_on_the_way_evaluation_passes_them() -> None:
    real, fake = clusters(90, CENTRES, seed=8), clusters(60, CENTRES[:5], seed=9)
    single = precision_recall_density_coverage(real.float(), fake.float())
    double = precision_recall_density_coverage(real, fake)
    # One ball's surface may fall on the other side of a point at float32 precision: one point in 60 at most.
    assert single == pytest.approx(double, abs=1 / 60 + 1e-9)


def test_too_few_or_mismatched_features_are_refused() -> None:
    real = clusters(20, CENTRES, seed=10)
    with pytest.raises(ValueError, match="fake features: 3 rows have no 3-th nearest neighbour; pass at least 4"):
        precision_recall_density_coverage(real, real[:3])
    with pytest.raises(ValueError, match="real features: 5 rows have no 5-th nearest neighbour; pass at least 6"):
        RealManifold(real[:5])
    with pytest.raises(ValueError, match="cannot be compared with real features"):
        RealManifold(real).compare(real[:, :4])
    with pytest.raises(ValueError, match="cannot be compared with real features"):
        RealManifold(real).compare(real.float())
