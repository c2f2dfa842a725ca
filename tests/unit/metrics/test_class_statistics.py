"""Class coverage, entropy and accuracy of the classes an evaluator predicts for generated images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo.metrics import ClassStatistics


def test_class_statistics_count_predicted_classes() -> None:
    stats = ClassStatistics(num_classes=4)
    predicted = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])  # class 3 never, class 2 twice its share
    stats.update(nn.functional.one_hot(predicted, 4).float(), labels=torch.tensor([0, 1, 1, 1, 2, 2, 3, 3]))
    values = stats.compute()
    assert float(values["class_coverage"]) == 0.75
    shares = torch.tensor([0.25, 0.25, 0.5])
    assert float(values["class_entropy"]) == pytest.approx(
        float(-(shares * shares.log()).sum() / torch.log(torch.tensor(4.0)))
    )
    assert float(values["class_accuracy"]) == pytest.approx(5 / 8)  # positions 0, 2, 3, 4, 5
    uniform = ClassStatistics(num_classes=4)
    uniform.update(torch.eye(4))
    assert float(uniform.compute()["class_entropy"]) == pytest.approx(1.0)
    assert "class_accuracy" not in uniform.compute()
