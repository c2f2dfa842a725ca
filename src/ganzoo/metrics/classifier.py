"""A small CNN classifier, trained on a labelled dataset, whose features give a domain-specific FID.

Inception features are the standard for FID but need weights that cannot always be downloaded, and they
describe ImageNet photos rather than, say, 32x32 grey clothing. A classifier trained on the dataset itself
gives features that separate its classes ("domain FID") and predictions that measure class coverage.
The recipe works for any labelled :class:`~ganzoo.data.base.ImageDataModule`; trained classifiers are
cached on disk, keyed by the recipe and a digest of the training data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ganzoo.checkpoint import save_atomic
from ganzoo.errors import ConfigError, DataError
from ganzoo.images import from_uint8, to_uint8

log = logging.getLogger(__name__)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallClassifier(nn.Module):
    """A strided stem, two conv stages (2*width, 4*width), a 4x4 pooled map, a feature layer and a head.

    Input: (N, channels, H, W) float in [-1, 1], any H, W >= 8. :meth:`features` returns (N, num_features)
    (the penultimate layer, what FID/KID compare); ``forward`` returns (N, num_classes) logits. Keeping a 4x4
    map instead of global pooling keeps the layout of the image, which clothing classes depend on.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 16, num_features: int = 128) -> None:
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(4 * width * 16, num_features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return from_uint8(images) if images.dtype == torch.uint8 else images.float()


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    width: int = 16,
    num_features: int = 128,
    device: torch.device | str = "cpu",
) -> SmallClassifier:
    """Fit a :class:`SmallClassifier` with Adam and a one-cycle schedule; returns it in eval mode.

    ``images``: (N, C, H, W), uint8 in [0, 255] or float in [-1, 1]; ``labels``: (N,) int64. Batches move to
    ``device`` one at a time, so the data may stay on the CPU as uint8. Deterministic for a given ``seed``
    on the CPU.
    """
    if len(images) < 2:
        raise DataError(f"cannot train an evaluator classifier on {len(images)} images: use a larger dataset")
    batch_size = min(batch_size, len(images))
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallClassifier(images.shape[1], num_classes, width=width, num_features=num_features).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    per_epoch = len(images) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, epochs * per_epoch))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, per_epoch * batch_size, batch_size):
            idx = order[start : start + batch_size]
            x, y = _as_float(images[idx]).to(device), labels[idx].to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities (N, num_classes) on the CPU of ``images`` (N, C, H, W), uint8 or float in [-1, 1]."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [
            F.softmax(model(_as_float(images[i : i + batch_size]).to(device)), dim=1).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def dataset_tensors(dataset: Dataset, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of an ImageDataModule dataset: images uint8 (N, C, H, W) and labels int64 (N,)."""
    images, labels = [], []
    with torch.random.fork_rng(devices=[]):  # the loader draws a seed: leave the caller's RNG untouched
        for x, y in DataLoader(dataset, batch_size=batch_size):  # type: ignore[arg-type]
            images.append(to_uint8(x))
            labels.append(y)
    return torch.cat(images), torch.cat(labels)


@dataclass(frozen=True)
class ClassifierRecipe:
    """How an evaluator classifier is trained; part of its cache key."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    width: int = 16
    num_features: int = 128


def classifier_from_state(
    state: dict[str, torch.Tensor], channels: int, num_classes: int, recipe: ClassifierRecipe
) -> SmallClassifier:
    """A :class:`SmallClassifier` holding trained weights, in eval mode; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):  # the initialisation is overwritten anyway
        model = SmallClassifier(channels, num_classes, recipe.width, recipe.num_features)
    model.load_state_dict(state)
    return model.eval()


def has_labels(datamodule: Any) -> bool:
    """Whether an evaluator classifier can be trained for ``datamodule``: its own labels, or the labelled data a
    translation data module names for its evaluator (``evaluator_data()``)."""
    if hasattr(datamodule, "evaluator_data"):
        datamodule = datamodule.evaluator_data()
    return bool(datamodule.num_classes)


def require_labels(datamodule: Any) -> None:
    """Raise a one-line ConfigError if ``datamodule`` has no labels to train an evaluator classifier on
    (:func:`has_labels`); the entry points call this before training so that the mistake is reported before
    any work.
    """
    if not has_labels(datamodule):
        if hasattr(datamodule, "evaluator_data"):
            datamodule = datamodule.evaluator_data()
        raise ConfigError(
            f"the {datamodule.name} data is unlabeled, so no evaluator classifier can be trained on it: "
            "use metrics=inception (Inception FID/IS), or train without evaluation: '~metrics'"
        )


def cached_classifier(
    datamodule: Any, cache_dir: str | Path, recipe: ClassifierRecipe, device: torch.device | str
) -> tuple[SmallClassifier, float, Path]:
    """The evaluator classifier of ``datamodule``: loaded from ``cache_dir`` or trained there first.

    Trained on the un-augmented train split; the accuracy is measured on the val split. The file name holds
    the dataset name, resolution, channels and a digest of the recipe and of the training data, so changed
    data or a changed recipe trains a new classifier instead of reusing a stale one.
    Returns (classifier in eval mode on ``device``, val accuracy, cache file).
    """
    require_labels(datamodule)
    num_classes = datamodule.num_classes
    identity = {
        "recipe": asdict(recipe),
        "data": datamodule.fingerprint("train"),
        "num_classes": num_classes,
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{datamodule.name}-{datamodule.image_size}px-{datamodule.channels}ch-classifier-{digest}.pt"
    path = Path(cache_dir) / "evaluators" / name
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("identity") == identity:
                model = classifier_from_state(saved["state_dict"], datamodule.channels, num_classes, recipe)
                return model.to(device), float(saved["accuracy"]), path
            log.warning("evaluator cache %s does not match this data or recipe: training a new one", path)
        except Exception as e:  # a truncated or foreign file: retrain rather than fail
            log.warning("evaluator cache %s is unreadable (%s): training a new one", path, type(e).__name__)
    log.info("training the %s evaluator classifier (%d epochs); cached at %s", datamodule.name, recipe.epochs, path)
    train_x, train_y = dataset_tensors(datamodule.eval_dataset("train"))
    model = train_classifier(train_x, train_y, num_classes, device=device, **asdict(recipe))
    val_x, val_y = dataset_tensors(datamodule.eval_dataset("val"))
    accuracy = float((predict(model, val_x).argmax(1) == val_y).float().mean())
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_atomic({"identity": identity, "state_dict": state, "accuracy": accuracy}, path)
    log.info("%s evaluator classifier: val accuracy %.4f", datamodule.name, accuracy)
    return model, accuracy, path
