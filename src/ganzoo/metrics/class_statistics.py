"""Class coverage and class accuracy of generated images, as judged by an evaluator classifier."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


class ClassStatistics(Metric):
    """Counts the evaluator's predicted classes of generated images; a torchmetrics Metric, so DDP sums them.

    ``update(logits, labels)``: logits (N, K) of the evaluator; labels (N,) int64, the classes the images were
    generated for (class-conditional models), or None. ``compute()`` returns

    - ``class_coverage``: share of classes predicted for at least half of their fair share (1/K) of the
      images; 1.0 means no class is starved (mode collapse drives it down);
    - ``class_entropy``: entropy of the predicted-class histogram divided by log K, 1.0 for a uniform one;
    - ``class_accuracy``: share of images predicted as the class they were generated for (only with labels).
    """

    full_state_update = False
    counts: torch.Tensor
    correct: torch.Tensor
    labelled: torch.Tensor

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"class statistics need at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("labelled", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        predicted = logits.argmax(dim=1)
        self.counts += torch.bincount(predicted, minlength=self.num_classes)
        if labels is not None:
            self.correct += (predicted == labels.to(predicted.device)).sum()
            self.labelled += labels.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        shares = self.counts.double() / self.counts.sum().clamp(min=1)
        nonzero = shares[shares > 0]
        entropy = (nonzero * nonzero.reciprocal().log()).sum() / math.log(self.num_classes)
        values = {
            "class_coverage": (shares >= 0.5 / self.num_classes).double().mean(),
            "class_entropy": entropy,
        }
        if self.labelled > 0:
            values["class_accuracy"] = self.correct.double() / self.labelled
        return values
