"""A small CNN classifier whose penultimate features give a domain-specific Fréchet distance.

Inception features are the standard for FID but need weights that cannot always be downloaded, and they
describe ImageNet photos rather than, say, 32x32 grey clothing. A classifier trained on the dataset itself
gives features that separate its classes ("domain FID") and predictions that measure class coverage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallClassifier(nn.Module):
    """A strided stem, two conv stages (2*width, 4*width), global average pooling, a feature layer and a head.

    Sized to train on a CPU in well under a minute per Fashion-MNIST epoch while reaching ~90% accuracy.
    Input: (N, channels, H, W) in [-1, 1], any H, W >= 8. ``features`` returns (N, num_features);
    ``forward`` returns (N, num_classes) logits. ``num_features`` is what torchmetrics' FID reads from a
    custom extractor.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 16, num_features: int = 128) -> None:
        super().__init__()
        self.num_features = num_features
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, num_features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassifierFeatures(nn.Module):
    """Frozen, eval-mode view of a classifier's features, in the form torchmetrics' FID/KID take as ``feature``.

    Input: float (N, C, H, W) in [-1, 1]; output (N, num_features) float64-safe features.
    """

    def __init__(self, classifier: SmallClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.num_features = classifier.num_features

    def train(self, mode: bool = True) -> ClassifierFeatures:
        # Metrics call .train() on their children; the extractor must stay frozen in eval mode.
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x.float())


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    **kwargs: int,
) -> SmallClassifier:
    """Fit a :class:`SmallClassifier` on ``images`` (N, C, H, W) in [-1, 1] and ``labels`` (N,) with Adam.

    Deterministic for a given ``seed`` on the CPU. Returns the model in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallClassifier(channels=images.shape[1], num_classes=num_classes, **kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, steps))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities (N, num_classes) of ``images`` (N, C, H, W) in [-1, 1]."""
    model.eval()
    return torch.cat(
        [F.softmax(model(images[i : i + batch_size].float()), dim=1) for i in range(0, len(images), batch_size)]
    )
