"""Paired metrics of translations: how close each output is to its own target (pix2pix on aligned pairs).

No network and no download: torchmetrics' mean absolute error, PSNR and SSIM between an output and the target of
the same pair, on the uint8 images a user would save, read as intensities in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torchmetrics import MeanAbsoluteError
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from ganzoo.errors import ConfigError

#: Metric names accepted in configs (``metrics.evaluation.metrics``); each produces one value of that name.
PAIRED_METRICS = ("l1", "psnr", "ssim")

#: Side of SSIM's Gaussian window (Wang et al. 2004; torchmetrics' default), shrunk for images smaller than it.
SSIM_WINDOW = 11


class PairedMetrics(nn.Module):
    """``l1``, ``psnr`` and/or ``ssim`` between outputs and their targets, accumulated over batches.

    * ``l1``: mean absolute difference per pixel and channel, in [0, 1] (0: identical);
    * ``psnr``: peak signal-to-noise ratio in dB of each image pair (peak 1.0), averaged over the pairs;
    * ``ssim``: structural similarity of each pair (11x11 Gaussian window, sigma 1.5), averaged, in [-1, 1].

    Under DDP every process must call :meth:`compute`; torchmetrics gathers the states there.

    Args:
        metrics: any of :data:`PAIRED_METRICS`.
        image_size: side of the images (SSIM's window shrinks to fit images smaller than 11 pixels).
    """

    def __init__(self, metrics: Iterable[str] = PAIRED_METRICS, image_size: int = 256) -> None:
        super().__init__()
        self.names = tuple(metrics)
        unknown = sorted(set(self.names) - set(PAIRED_METRICS))
        if unknown:
            raise ConfigError(f"unknown paired metrics {unknown}: choose from {list(PAIRED_METRICS)}")
        self.l1 = MeanAbsoluteError() if "l1" in self.names else None
        self.psnr = (
            PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3))
            if "psnr" in self.names
            else None
        )
        side = min(SSIM_WINDOW, image_size)
        window = side if side % 2 else side - 1  # the window must be odd
        self.ssim = (
            StructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=window) if "ssim" in self.names else None
        )
        # Follows the module's device, which the torchmetrics states do too.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @torch.no_grad()
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add pairs: ``outputs`` and ``targets`` uint8 (N, C, H, W) of the same shape; pair i is
        (outputs[i], targets[i])."""
        if outputs.shape != targets.shape:
            raise ConfigError(
                f"outputs of shape {tuple(outputs.shape[1:])} cannot be compared with targets of shape "
                f"{tuple(targets.shape[1:])}: give the generator's output the channels and size of the targets"
            )
        device = self._anchor.device
        fake = outputs.to(device, torch.float32) / 255.0
        real = targets.to(device, torch.float32) / 255.0
        if self.l1 is not None:
            self.l1.update(fake, real)
        if self.psnr is not None:
            self.psnr.update(fake, real)
        if self.ssim is not None:
            self.ssim.update(fake, real)

    @torch.no_grad()
    def compute(self) -> dict[str, float]:
        """``{"l1": ..., "psnr": ..., "ssim": ...}`` (those chosen) over every process's pairs."""
        values: dict[str, float] = {}
        for name in self.names:
            metric = getattr(self, name)
            if metric is not None:
                values[name] = float(metric.compute())
        return values

    def reset(self) -> None:
        """Forget the pairs seen so far."""
        for name in self.names:
            metric = getattr(self, name)
            if metric is not None:
                metric.reset()
