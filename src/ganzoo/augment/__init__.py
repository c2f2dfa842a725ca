"""Differentiable augmentation of everything a discriminator sees (``model.augment``): one implementation, used
by every model (:meth:`ganzoo.models.base.GANModule.augmented`).

- ``none``: no augmentation (the references' default);
- ``diffaug``: DiffAugment (:class:`DiffAugment`), its ops from ``model.augment_options.policy``;
- ``ada``: adaptive augmentation (:class:`AdaptiveAugment`), with ``model.augment_options.target``, ``interval``,
  ``kimg``, ``pipeline`` and the initial (or, with ``target=null``, fixed) probability ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ganzoo.augment.ada import PIPELINES, AdaptiveAugment
from ganzoo.augment.base import Augmentation
from ganzoo.augment.diffaug import POLICIES, DiffAugment, parse_policy
from ganzoo.errors import ConfigError

#: The values of ``model.augment``.
AUGMENTS = ("none", "diffaug", "ada")

__all__ = [
    "AUGMENTS",
    "PIPELINES",
    "POLICIES",
    "AdaptiveAugment",
    "Augmentation",
    "DiffAugment",
    "build_augmentation",
    "parse_policy",
]


def build_augmentation(augment: str | None = "none", options: Mapping[str, Any] | None = None) -> Augmentation | None:
    """The augmentation ``model.augment`` names, built from ``model.augment_options`` (``policy`` for ``diffaug``;
    ``pipeline``, ``target``, ``interval``, ``kimg``, ``p`` for ``ada``; the others are ignored); None for ``none``.
    """
    options = dict(options or {})
    known = {"policy", "pipeline", "target", "interval", "kimg", "p"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"model.augment_options has unknown keys {unknown}: use {', '.join(sorted(known))}, "
            "e.g. model.augment_options.target=0.6"
        )
    if augment is None or augment is False or augment == "none":
        return None
    if augment == "diffaug":
        return DiffAugment(options.get("policy", "color,translation,cutout"))
    if augment == "ada":
        ada = {key: options[key] for key in ("pipeline", "target", "interval", "kimg", "p") if key in options}
        return AdaptiveAugment(**ada)
    raise ConfigError(f"model.augment={augment!r} is not one of {', '.join(AUGMENTS)}: e.g. model.augment=diffaug")
