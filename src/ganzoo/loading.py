"""``ganzoo.load(path)``: a ready-to-sample model from a ganzoo checkpoint or a reference implementation's weights.

The kind of file is read off its contents (its keys), not its name, so renamed files load too. Every file is
read with ``torch.load(weights_only=True)``: tensors and plain containers, never code.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ganzoo.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from ganzoo.sampling import ImageToImage, NoiseToImage

SUPPORTED = (
    "a ganzoo checkpoint (<run dir>/checkpoints/last.ckpt), a BigGAN-PyTorch G.pth / G_ema.pth, "
    "an official CycleGAN generator .pth (latest_net_G_A.pth, horse2zebra.pth), "
    "an official pix2pix generator .pth (latest_net_G.pth, facades_label2photo.pth) "
    "or a pytorch/examples DCGAN netG_epoch_*.pth"
)


def load(
    path: str | Path, device: str | torch.device = "cpu", *, direction: str | None = None
) -> NoiseToImage | ImageToImage:
    """Load a GAN for sampling: a model in eval mode on ``device``, whatever file it comes from.

    Example::

        import ganzoo
        g = ganzoo.load("outputs/train/runs/<date>_<time>/checkpoints/last.ckpt")
        ganzoo.save_grid(g.generate(16, seed=0), "grid.png")

    Args:
        path: one of
            - a ganzoo checkpoint (``.ckpt`` written by ``python -m ganzoo.train``; it carries its model config);
            - a BigGAN-PyTorch generator, ``G.pth`` or ``G_ema.pth`` (architecture read off the weights, the run's
              ``state_dict.pth`` beside it used for its epsilons; samples with the stored batch-norm statistics);
            - an official CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix) ResNet generator, e.g.
              ``latest_net_G_A.pth`` or a pretrained ``horse2zebra.pth``;
            - an official pix2pix (same repository) U-Net generator, e.g. ``latest_net_G.pth`` or a pretrained
              ``facades_label2photo.pth``; it translates by the official test protocol (dropout active, each image
              normalized by its own statistics; ``translate(..., seed=)`` fixes the dropout masks);
            - a pytorch/examples DCGAN generator, ``netG_epoch_*.pth``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``, or ``"auto"`` (a GPU when there is one).
        direction: for a single CycleGAN or pix2pix generator file only: the direction it translates, ``"AtoB"``
            or ``"BtoA"``. Default: ``BtoA`` for ``*G_B.pth`` files, else ``AtoB``.

    Returns:
        A :class:`~ganzoo.sampling.NoiseToImage` model (DCGAN, BigGAN) with
        ``generate(n, classes=None, truncation=None, seed=None)`` -> float32 (n, C, H, W) in [-1, 1]
        (``classes``: class ids for class-conditional models, repeated up to ``n``; ``seed``: the same images
        on every call and device), ``latent_dim`` and ``num_classes`` (0: unconditional);
        or an :class:`~ganzoo.sampling.ImageToImage` model (a ganzoo CycleGAN: both directions; a single
        official CycleGAN or pix2pix generator: its own) with ``translate(images, direction="AtoB")``:
        float (N, C, H, W) in [-1, 1] -> float32 in [-1, 1]. ``isinstance(model, ganzoo.NoiseToImage)`` tells the
        two apart.
        ``ganzoo.to_uint8`` and ``ganzoo.save_grid`` turn the images into uint8 tensors or a PNG grid.

    Raises:
        CheckpointError: the file is missing, unreadable, or none of the supported kinds (the message names
            the file and what is supported).
        ConfigError: ``device`` is unknown or not available here.
    """
    target = resolve_device(device)
    path = Path(path)
    contents = _peek(path)
    kind = _kind(contents, path)
    if direction is not None and kind not in ("cyclegan_generator", "pix2pix_generator"):
        raise ConfigError(
            f"direction= only applies to a single CycleGAN or pix2pix generator file, and {path} is not one"
        )
    if kind == "ganzoo":
        from ganzoo.checkpoint import load_model

        model = load_model(path, map_location="cpu")
    elif kind == "biggan_generator":
        from ganzoo.models.biggan import BigGAN
        from ganzoo.weights.biggan import generator_from_official

        # BigGAN-PyTorch's published samples use the stored statistics (its --G_eval_mode).
        model = BigGAN(generator_from_official(path), G_eval_mode=True)
    elif kind in ("cyclegan_generator", "pix2pix_generator"):
        from ganzoo.models.translation import OneWayTranslator
        from ganzoo.weights.cyclegan import generator_from_official

        own = direction or ("BtoA" if re.search(r"G_?B$", path.stem) else "AtoB")
        # pix2pix's published results come from its test script without --eval: dropout on, per-image statistics.
        eval_mode = kind == "cyclegan_generator"
        model = OneWayTranslator(generator_from_official(path), own, source=str(path), eval_mode=eval_mode)
    else:
        from ganzoo.models.dcgan import DCGAN
        from ganzoo.weights.dcgan import generator_from_reference

        model = DCGAN(generator_from_reference(path))
    return model.to(target).eval()


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ``"auto"`` is the first GPU when there is one, else the CPU.

    A ConfigError names a device this machine does not have, before any weights are read.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device={device!r} is not a device: use 'cpu', 'cuda', 'cuda:1' or 'auto'") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device={device!r} but this machine has no usable GPU: use device='cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(f"device={device!r} but this machine has {count} GPU(s): use cuda:0 .. cuda:{count - 1}")
    return resolved


def _peek(path: Path) -> Any:
    """The file's top-level object, read weights-only; memory-mapped where possible, so tensors are not read yet."""
    if not path.is_file():
        hint = " (it is a folder: pass a file inside it)" if path.is_dir() else ""
        raise CheckpointError(f"{path} does not exist{hint}: pass {SUPPORTED}")
    # Files from PyTorch >= 1.6 are zip archives and can be mapped; older ones (some official CycleGAN
    # pretrained models) are read whole.
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # weights_only refuses the globals a file names; other unpickling errors mean it is no pickle at all.
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise CheckpointError(f"{path} is not a readable PyTorch file: pass {SUPPORTED}") from None
        raise CheckpointError(
            f"{path} holds Python objects ({found.group(1)}), which ganzoo does not unpickle (weights_only=True): "
            f"pass {SUPPORTED}"
        ) from None
    except Exception as e:  # truncated archives and non-PyTorch files raise many types
        raise CheckpointError(f"{path} is not a readable PyTorch file ({type(e).__name__}): pass {SUPPORTED}") from None


def _kind(contents: Any, path: Path) -> str:
    """Which loader fits ``contents``: ``ganzoo``, ``biggan_generator``, ``cyclegan_generator``, ``pix2pix_generator``
    or ``dcgan_generator``.

    Discriminators and other files of the references are named in the error, so the user knows which file to
    pass instead.
    """
    if not isinstance(contents, dict):
        raise CheckpointError(f"{path} holds a {type(contents).__name__}, not a state dict: pass {SUPPORTED}")
    if isinstance(contents.get("state_dict"), dict) and (
        "ganzoo" in contents or "pytorch-lightning_version" in contents
    ):
        return "ganzoo"  # Lightning checkpoint; load_model says so if ganzoo did not write it
    if "config" in contents and "itr" in contents:
        raise CheckpointError(
            f"{path} is BigGAN-PyTorch's run state (state_dict.pth), not weights: pass G_ema.pth or G.pth from the "
            "same folder"
        )
    if not contents or not all(isinstance(v, torch.Tensor) for v in contents.values()):
        raise CheckpointError(f"{path} is neither a ganzoo checkpoint nor a state dict of tensors: pass {SUPPORTED}")
    keys = {k.removeprefix("module.") for k in contents}  # nn.DataParallel's prefix
    shape = {k.removeprefix("module."): v.shape for k, v in contents.items()}
    if "output_layer.2.weight" in keys and "linear.weight" in keys:
        return "biggan_generator"
    if "embed.weight" in keys and "linear.weight" in keys:
        raise CheckpointError(f"{path} is a BigGAN-PyTorch discriminator (D.pth): pass G_ema.pth or G.pth instead")
    if len(shape.get("model.1.weight", ())) == 4 and shape["model.1.weight"][-2:] == (7, 7):
        return "cyclegan_generator"
    if len(shape.get("model.model.0.weight", ())) == 4 and shape["model.model.0.weight"][-2:] == (4, 4):
        return "pix2pix_generator"  # the U-Net's outermost block, its first layer a 4x4 conv
    if len(shape.get("model.0.weight", ())) == 4 and shape["model.0.weight"][-2:] == (4, 4):
        raise CheckpointError(
            f"{path} is an official CycleGAN or pix2pix discriminator (net_D): pass a generator such as "
            "latest_net_G_A.pth (CycleGAN) or latest_net_G.pth (pix2pix)"
        )
    convs = sorted((int(k.split(".")[1]), s) for k, s in shape.items() if re.fullmatch(r"main\.\d+\.weight", k))
    convs = [s for _, s in convs if len(s) == 4]
    if convs:
        # netD ends in one 1-channel logit map; netG's last transposed conv is (ngf, image channels, 4, 4).
        if convs[-1][0] == 1:
            raise CheckpointError(
                f"{path} is a pytorch/examples DCGAN discriminator (netD): pass netG_epoch_*.pth instead"
            )
        return "dcgan_generator"
    raise CheckpointError(f"{path} is not a supported weights file: pass {SUPPORTED}")
