"""Feature extractors for FID, KID and IS: one pass per batch gives both the features and the class logits.

Every extractor takes uint8 images (N, C, H, W) in [0, 255] (generated images are quantised like saved
files, as in the reference FID code) and returns ``(features (N, num_features), logits (N, num_logits))``,
float32. Extractors are frozen and stay in eval mode; they are held by the evaluation, never by the GAN
module, so DDP does not wrap them, no optimizer sees them, and checkpoints do not carry their weights.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo.distributed import broadcast_from_first, process_info
from ganzoo.images import from_uint8
from ganzoo.metrics import inception
from ganzoo.metrics.classifier import ClassifierRecipe, cached_classifier, classifier_from_state

log = logging.getLogger(__name__)


class FeatureExtractor(nn.Module):
    """Base class. ``name`` ends every metric key (``val/fid_<name>``); :meth:`prepare` loads the weights."""

    name: str = "features"
    num_features: int = 0
    num_logits: int = 0

    def prepare(self, datamodule: Any, cache_dir: str | Path, device: torch.device | str) -> None:
        """Load (or train) the weights and move to ``device``; called once per process before use."""
        raise NotImplementedError

    def identity(self) -> str:
        """Names the weights in cache keys: real statistics of another extractor are never reused."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)


class InceptionFeatures(FeatureExtractor):
    """torchmetrics' InceptionV3 (TF 2015-12-05 weights): the FID/IS/KID that papers report.

    Grey images are repeated to RGB. Args: ``weights_path`` (a local copy of the weights, for machines
    without network), ``download`` (allow fetching them into torch.hub's cache) and ``timeout`` (seconds).
    The file is located in the constructor, so a missing file fails before any training starts.
    """

    name = "inception"
    num_features = 2048
    num_logits = 1008

    def __init__(self, weights_path: str | None = None, download: bool = True, timeout: float = 10.0) -> None:
        super().__init__()
        self.weights_path = inception.resolve_weights(weights_path, download=download, timeout=timeout)
        self.net: nn.Module | None = None
        self._digest: str | None = None

    def prepare(self, datamodule: Any, cache_dir: str | Path, device: torch.device | str) -> None:
        if self.net is None:
            self.net = inception.build_inception(self.weights_path)
        self.to(device)

    def identity(self) -> str:
        if self._digest is None:
            self._digest = inception.file_digest(self.weights_path)
        return f"inception_{self._digest}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.net is not None, "call prepare() first"
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        pool, logits = self.net(images)
        return pool.float(), logits.float()


class ClassifierFeatures(FeatureExtractor):
    """The penultimate features and logits of a small classifier trained on the run's own labelled data.

    Gives a "domain FID" for datasets Inception describes poorly (or where its weights cannot be had), and,
    through the logits, the class coverage and class accuracy of generated samples. ``name`` should name the
    dataset (``${data.name}``), e.g. ``fmnist`` for keys like ``val/fid_fmnist``. The other arguments are the
    :class:`~ganzoo.metrics.classifier.ClassifierRecipe`. The classifier is trained on the first use and
    cached under ``<cache_dir>/evaluators``.
    """

    def __init__(self, name: str, **recipe: Any) -> None:
        super().__init__()
        self.name = name
        self.recipe = ClassifierRecipe(**recipe)
        self.num_features = self.recipe.num_features
        self.classifier: nn.Module | None = None
        self.accuracy: float | None = None
        self.cache_file: Path | None = None

    def prepare(self, datamodule: Any, cache_dir: str | Path, device: torch.device | str) -> None:
        if self.classifier is None:
            # Process 0 loads or trains it and sends the weights to the others, so every process measures with
            # the same network even when the nodes of a run do not share a cache folder.
            trained = None
            if process_info()[1] == 0:
                # A DataModule may name other labelled data to train the evaluator on (translation domains).
                data = datamodule.evaluator_data() if hasattr(datamodule, "evaluator_data") else datamodule
                model, accuracy, path = cached_classifier(data, cache_dir, self.recipe, device)
                trained = ({k: v.cpu() for k, v in model.state_dict().items()}, model.num_classes, accuracy, path)
            state, num_classes, self.accuracy, self.cache_file = broadcast_from_first(trained)
            model = classifier_from_state(state, datamodule.channels, num_classes, self.recipe)
            self.classifier = model.requires_grad_(False)
            self.num_logits = num_classes
        self.to(device)

    def identity(self) -> str:
        # A digest of the weights themselves: a retrained classifier never reuses the old one's statistics.
        assert self.classifier is not None, "call prepare() first"
        digest = hashlib.sha1()
        for name, tensor in sorted(self.classifier.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"classifier_{digest.hexdigest()[:8]}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.classifier is not None, "call prepare() first"
        features = self.classifier.features(from_uint8(images))
        return features, self.classifier.head(features)
