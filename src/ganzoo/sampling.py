"""The sampling contract: what a model offers to users, callbacks, metrics and the CLIs, and the helpers they share.

Two kinds of model, recognised with ``isinstance`` (the Protocols are runtime-checkable):

- :class:`NoiseToImage` (DCGAN, BigGAN): ``generate(n, classes, truncation, seed)`` from latent noise;
- :class:`ImageToImage` (CycleGAN, pix2pix, a lone official generator): ``translate(images, direction)``.

The helpers build what several callers need alike: latents fixed by a seed (:func:`fixed_latents`), class
labels cycled in order (:func:`cycled_labels`, :func:`cycled_classes`), the exact inputs ``generate(n, classes, truncation, seed)`` uses
(:func:`seeded_inputs`), dropout masks fixed by a seed (:func:`seeded_dropout`, :func:`iteration_seed`), generation
and translation batch by batch (:func:`generate_in_batches`,
:func:`translate_in_batches`), and the truncation trick (:func:`truncate`). Latents and labels are drawn on the
CPU, so a seed gives the same images on every device.

Images are float (N, C, H, W) in [-1, 1] throughout; uint8 only through :mod:`ganzoo.images`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol, runtime_checkable

import torch

from ganzoo.errors import ConfigError

#: Class ids as callers give them: one id, a sequence of ids or a 1-D integer tensor.
ClassIds = int | Sequence[int] | torch.Tensor


@runtime_checkable
class NoiseToImage(Protocol):
    """A generator of images from latent noise (and class ids when ``num_classes`` > 0)."""

    #: Entries of one latent vector.
    latent_dim: int
    #: Number of classes the model is conditioned on; 0 for an unconditional model.
    num_classes: int

    def generate(
        self,
        n: int | None = None,
        classes: ClassIds | None = None,
        truncation: float | None = None,
        seed: int | None = None,
        *,
        z: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        """``n`` images, float32 (n, C, H, W) in [-1, 1] on the model's device.

        ``classes`` are cycled up to ``n`` (None: drawn uniformly); ``truncation`` redraws latent entries outside
        [-truncation, truncation]; ``seed`` draws the labels, then the latents, from
        ``torch.Generator().manual_seed(seed)`` on the CPU (None: the model's own noise stream). ``z`` (N,
        latent_dim) and ``labels`` (N,) replace the drawn ones. ``settings`` are the model's sampling settings
        (e.g. BigGAN's ``G_eval_mode``, ``standing_stats``), named as its config keys; those not given keep the
        model's values.
        """
        ...


@runtime_checkable
class ImageToImage(Protocol):
    """A translator of images from one domain to another."""

    #: The directions :meth:`translate` takes, the default first: ``"AtoB"`` and/or ``"BtoA"``.
    directions: tuple[str, ...]

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Float images (N, C, H, W) in [-1, 1] translated ``direction``: float32 (N, C', H, W) in [-1, 1] on the
        model's device."""
        ...

    def source_channels(self, direction: str) -> int:
        """The image channels :meth:`translate` takes in ``direction``."""
        ...


# ---------------------------------------------------------------------------------------------------- truncation
def check_truncation(threshold: float | None) -> float | None:
    """``threshold`` as a float, or None; a one-line error for anything but a positive number."""
    if threshold is None:
        return None
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ConfigError(f"truncation={threshold!r} must be a positive threshold such as 0.5, or null for none")
    return float(threshold)


def truncate(z: torch.Tensor, threshold: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The truncation trick (Brock et al. 2019): every entry of ``z`` with ``|z| > threshold`` redrawn from
    N(0, 1) until all lie inside the threshold. Returns a new tensor of ``z``'s shape, on ``z``'s device.

    Resampling (rather than clamping or rescaling) keeps each entry distributed as a standard normal
    truncated to [-threshold, threshold], which is what BigGAN's truncation trick means. ``z`` is left
    unchanged; draws come from ``generator`` on the CPU, so a seed gives the same latents on any device.
    """
    threshold = check_truncation(threshold)
    out = z.detach().cpu().clone()
    outside = out.abs() > threshold
    while outside.any():
        out[outside] = torch.randn(int(outside.sum()), generator=generator, dtype=out.dtype)
        outside = out.abs() > threshold
    return out.to(z.device)


# ------------------------------------------------------------------------------------------------- dropout
@contextmanager
def seeded_dropout(device: torch.device, seed: int | None) -> Iterator[None]:
    """Inside the block random draws on ``device`` (dropout masks) come from ``seed``; the caller's random state is
    restored afterwards. ``seed`` None: draws come from the global random state, which moves on."""
    if seed is None:
        yield
        return
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[cuda[0]].manual_seed(seed)
        yield


_MASK64 = 2**64 - 1


#: The random streams :func:`iteration_seed` seeds: dropout masks (pix2pix) and D's input augmentation.
DROPOUT_STREAM = 0
AUGMENTATION_STREAM = 1


def iteration_seed(run_seed: int, step: int, rank: int = 0, stream: int = DROPOUT_STREAM) -> int:
    """The seed of iteration ``step``'s draws of one random ``stream`` (dropout masks, augmentations) on process
    ``rank`` of a run seeded ``run_seed``, e.g. for :func:`seeded_dropout`.

    A pure function of the integers (no state to checkpoint, no tensor, so nothing waits for a device): a
    resumed run draws what the uninterrupted one drew. SplitMix64's finalizer mixes them, so neighbouring
    steps, ranks and streams get unrelated seeds.
    """
    x = (run_seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + rank * 0x94D049BB133111EB + 1) & _MASK64
    x = (x + stream * 0xD6E8FEB86659FD93) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1  # 63 bits: any torch seed


# ------------------------------------------------------------------------------------------------- latents
def seeded(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``; a ConfigError when ``seed`` is not an integer."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"seed={seed!r} is not an integer: e.g. seed=0")
    return torch.Generator().manual_seed(int(seed))


def draw_latents(
    n: int, latent_dim: int, generator: torch.Generator | None, truncation: float | None = None
) -> torch.Tensor:
    """``n`` latent vectors, float32 (n, latent_dim) ~ N(0, I) on the CPU, drawn from ``generator``; with
    ``truncation``, entries outside [-truncation, truncation] are redrawn from it (see :func:`truncate`)."""
    z = torch.randn(n, latent_dim, generator=generator)
    truncation = check_truncation(truncation)
    return z if truncation is None else truncate(z, truncation, generator)


def fixed_latents(n: int, latent_dim: int, seed: int, truncation: float | None = None) -> torch.Tensor:
    """The ``n`` latents (n, latent_dim) on the CPU that ``seed`` stands for: the same for the same arguments on
    every call and device, the first rows of a longer draw (sample sheets, evaluation)."""
    return draw_latents(n, latent_dim, seeded(seed), truncation)


# -------------------------------------------------------------------------------------------------- labels
def cycled_labels(n: int, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``ids`` repeated in order until there are ``n``: int64 (n,) on the CPU.

    ``cycled_labels(5, range(3))`` is ``[0, 1, 2, 0, 1]``: with ``nrow`` equal to the number of classes, a grid
    shows one class per column.
    """
    pool = torch.as_tensor(ids, dtype=torch.int64).reshape(-1).cpu()
    if not len(pool):
        raise ValueError("cycled_labels needs at least one class id")
    return pool.repeat(-(-n // len(pool)))[:n]


def cycled_classes(n: int, num_classes: int) -> torch.Tensor | None:
    """Every class of a model in turn, ``0, 1, ..., K-1, 0, 1, ...``: int64 (n,) on the CPU, or None for an
    unconditional model (``num_classes`` 0). Fixed labels of sample grids and evaluations."""
    return cycled_labels(n, range(num_classes)) if num_classes else None


def class_ids(classes: ClassIds) -> torch.Tensor:
    """``classes`` (one id, a sequence or a tensor of ids) as a 1-D int64 CPU tensor; a ConfigError otherwise."""
    ids: Any = classes
    if not isinstance(ids, torch.Tensor | numbers.Integral | str):
        with suppress(TypeError):  # not iterable: reported below
            ids = list(ids)
    if isinstance(ids, list) and not ids:
        return torch.empty(0, dtype=torch.int64)
    try:
        pool = None if isinstance(ids, str) else torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError):
        pool = None
    if pool is None or pool.dim() > 1 or pool.is_floating_point() or pool.is_complex() or pool.dtype == torch.bool:
        shown = classes.tolist() if isinstance(classes, torch.Tensor) else classes  # one line, even for a tensor
        raise ConfigError(f"classes={shown!r} must be integer class ids, e.g. classes=[0, 3]")
    return pool.reshape(-1).to(device="cpu", dtype=torch.int64)


def class_labels(
    num_classes: int, n: int, classes: ClassIds | None, generator: torch.Generator | None
) -> torch.Tensor | None:
    """The class ids (n,) int64 on the CPU for ``n`` images of a model with ``num_classes`` classes, or None for
    an unconditional one (``num_classes`` 0).

    ``classes`` (one id, or a sequence / 1-D tensor of ids) is cycled in order up to ``n``; None or empty draws
    the labels uniformly from ``generator``. A ConfigError names ids outside ``0 .. num_classes - 1``, or
    ``classes`` given to an unconditional model.
    """
    pool = None if classes is None else class_ids(classes)
    if not num_classes:
        if pool is not None and len(pool):
            raise ConfigError("classes= was given but this model is not class-conditional: remove classes=")
        return None
    if pool is None or not len(pool):
        return torch.randint(num_classes, (n,), generator=generator)
    bad = [c for c in pool.tolist() if not 0 <= c < num_classes]
    if bad:
        raise ConfigError(f"classes {bad} are outside 0..{num_classes - 1}: pick class ids the model was trained on")
    return cycled_labels(n, pool)


# ------------------------------------------------------------------------------------------- batched sampling
def seeded_inputs(
    model: NoiseToImage, n: int, classes: ClassIds | None = None, truncation: float | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The latents (n, latent_dim) and labels (n,) int64, or None, on the CPU, that
    ``model.generate(n, classes, truncation, seed)`` draws: the labels first (``classes`` cycled, else drawn
    uniformly), then the latents, from one generator seeded with ``seed``. Generating from slices of them gives
    the images of one ``generate`` call, whatever the batch size (see :func:`generate_in_batches`)."""
    generator = seeded(seed)
    labels = class_labels(model.num_classes, n, classes, generator)
    return draw_latents(n, model.latent_dim, generator, truncation), labels


def generate_in_batches(
    model: NoiseToImage,
    latents: torch.Tensor,
    labels: torch.Tensor | None,
    batch_size: int,
    **settings: Any,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Images of ``model`` for ``latents`` (N, latent_dim) and ``labels`` (N,) or None, ``batch_size`` at a time.

    Yields (images float32 (b, C, H, W) in [-1, 1] on the model's device, the batch's labels (b,) or None), in
    order; ``settings`` go to every ``generate`` call. With a model that samples each image on its own (eval-mode
    batch norm) the batches concatenate to the images of one call on all latents.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is not a positive integer: e.g. batch_size=100")
    for start in range(0, len(latents), batch_size):
        stop = start + batch_size
        batch_labels = labels[start:stop] if labels is not None else None
        yield model.generate(z=latents[start:stop], labels=batch_labels, **settings), batch_labels


def translate_in_batches(
    model: ImageToImage, batches: Iterable[torch.Tensor], direction: str
) -> Iterator[torch.Tensor]:
    """``model``'s translations of each batch of ``batches`` (float (b, C, H, W) in [-1, 1], any device), in order:
    float32 (b, C', H, W) in [-1, 1] on the model's device."""
    for images in batches:
        yield model.translate(images, direction)
