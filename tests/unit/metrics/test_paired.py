"""PairedMetrics: L1, PSNR and SSIM of outputs against their own targets, on uint8 images read as [0, 1]."""

from __future__ import annotations

import math

import pytest
import torch

from ganzoo.errors import ConfigError
from ganzoo.metrics.paired import PairedMetrics


def _images(n: int = 4, side: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_identical_pairs_score_perfectly_and_a_known_offset_gives_its_l1_and_psnr() -> None:
    targets = _images().clamp(20, 235)
    metrics = PairedMetrics(image_size=32)
    metrics.update(targets, targets)
    perfect = metrics.compute()
    assert perfect["l1"] == 0 and perfect["ssim"] == pytest.approx(1.0) and math.isinf(perfect["psnr"])

    metrics.reset()  # forgets the identical pairs
    metrics.update(targets + 10, targets)  # every pixel 10 levels brighter: |diff| = 10/255 everywhere
    values = metrics.compute()
    assert values["l1"] == pytest.approx(10 / 255, rel=1e-5)
    assert values["psnr"] == pytest.approx(20 * math.log10(255 / 10), rel=1e-5)
    assert 0 < values["ssim"] < 1


def test_psnr_is_the_mean_of_each_pairs_own() -> None:
    targets = _images(2).clamp(20, 235)
    outputs = targets.clone()
    outputs[0] += 5  # pair 0 off by 5 levels, pair 1 by 20
    outputs[1] += 20
    metrics = PairedMetrics(["psnr"], image_size=32)
    metrics.update(outputs[:1], targets[:1])  # over two batches
    metrics.update(outputs[1:], targets[1:])
    expected = (20 * math.log10(255 / 5) + 20 * math.log10(255 / 20)) / 2
    assert metrics.compute() == {"psnr": pytest.approx(expected, rel=1e-5)}


def test_ssim_falls_with_noise_and_fits_small_images() -> None:
    targets = _images(4, 8, seed=1)
    noise = torch.randint(-40, 41, targets.shape, generator=torch.Generator().manual_seed(2))
    scores = []
    for scale in (0.0, 0.5, 1.0):
        metrics = PairedMetrics(["ssim"], image_size=8)  # 8 px: a 7x7 window instead of 11x11
        metrics.update((targets.int() + (noise * scale).int()).clamp(0, 255).to(torch.uint8), targets)
        scores.append(metrics.compute()["ssim"])
    assert scores[0] == pytest.approx(1.0) and scores[0] > scores[1] > scores[2]


def test_bad_names_and_shapes_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown paired metrics \['mse'\]: choose from \['l1', 'psnr', 'ssim'\]"):
        PairedMetrics(["l1", "mse"])
    with pytest.raises(ConfigError, match=r"outputs of shape \(3, 32, 32\) cannot be compared with targets of shape"):
        PairedMetrics(image_size=32).update(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), _images(2))
