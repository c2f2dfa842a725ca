"""junyanz/pytorch-CycleGAN-and-pix2pix weights: CycleGAN's ``*_net_G_A.pth``, ``horse2zebra.pth`` and
``*_net_D_A.pth``, and pix2pix's U-Net ``latest_net_G.pth``, ``facades_label2photo.pth``.

The reference saves ``state_dict()`` of its ``ResnetGenerator`` / ``UnetGenerator`` / ``NLayerDiscriminator``,
whose layers sit in ``model`` (the U-Net's in nested ``model``s) at the indices ganzoo's :mod:`ganzoo.nets.cyclegan`
and :mod:`ganzoo.nets.unet` nets use, so the keys match. As the reference's loader does, this one drops ``module.``
prefixes (``nn.DataParallel``) and the stale ``running_mean`` / ``running_var`` / ``num_batches_tracked`` entries of
InstanceNorm layers that keep no running statistics (files written by older PyTorch or with
``track_running_stats=True``). Sizes (channels, ngf/ndf, blocks, levels or layers, norm, dropout) are read off the
weights unless given. Files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo.errors import CheckpointError
from ganzoo.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from ganzoo.nets.unet import UnetGenerator
from ganzoo.weights.state_dict import StateDict, read_state_dict

_TOP_LEVEL = re.compile(r"model\.(\d+)\.weight")
_BLOCK = re.compile(r"model\.(\d+)\.conv_block\.")


def _top_level_convs(state: StateDict) -> dict[int, torch.Size]:
    """Shapes of the 4-D weights ``model.<i>.weight``, by index ``i``."""
    convs = {}
    for key, value in state.items():
        match = _TOP_LEVEL.fullmatch(key)
        if match and value.dim() == 4:
            convs[int(match.group(1))] = value.shape
    return convs


def _norm(state: StateDict) -> str:
    """``"batch"`` when some top-level layer has a 1-D weight (an affine BatchNorm), else ``"instance"``."""
    norm_weights = [k for k, v in state.items() if _TOP_LEVEL.fullmatch(k) and v.dim() == 1]
    return "batch" if norm_weights else "instance"


def generator_from_official(source: str | Path | StateDict, **kwargs: Any) -> ResnetGenerator | UnetGenerator:
    """A ganzoo generator holding the weights of an official CycleGAN or pix2pix G.

    ``source`` is a ``.pth`` path or an already loaded state dict: a ``resnet_6blocks`` / ``resnet_9blocks`` G
    (e.g. ``latest_net_G_A.pth`` or a pretrained ``horse2zebra.pth``) gives a :class:`ResnetGenerator`; a
    ``unet_128`` / ``unet_256`` G (pix2pix's ``latest_net_G.pth`` or a pretrained ``facades_label2photo.pth``)
    gives a :class:`UnetGenerator`. ``kwargs`` (any of that net's arguments) override what is read off the
    weights. Outputs equal the official generator's for the same input, in eval and in training mode.
    """
    what = "CycleGAN or pix2pix generator .pth (e.g. latest_net_G_A.pth, latest_net_G.pth)"
    state, name = read_state_dict(source, f"an official {what}")
    if _is_official_unet(state):
        return _unet_from_official(state, name, kwargs)
    convs = _top_level_convs(state)
    first = convs.get(1)
    if first is None or first[-2:] != (7, 7):
        raise CheckpointError(
            f"{name} has neither a 7x7 conv model.1.weight (ResNet) nor a 4x4 conv model.model.0.weight (U-Net): it "
            "is not an official CycleGAN or pix2pix generator state dict (for a discriminator use "
            "discriminator_from_official)"
        )
    n_blocks = len({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    # Dropout(0.5) shifts a block's second conv from conv_block.5 to conv_block.6 (where BatchNorm sits without it).
    dropout = any(re.fullmatch(r"model\.\d+\.conv_block\.6\.weight", k) and v.dim() == 4 for k, v in state.items())
    params: dict[str, Any] = {
        "in_channels": first[1],
        "out_channels": convs[max(convs)][0],
        "ngf": first[0],
        "n_blocks": n_blocks,
        "norm": _norm(state),
        "use_dropout": dropout,
        # The first upsampling layer follows the blocks: a ConvTranspose2d has weights there, Upsample none.
        "upsample": "transpose" if 10 + n_blocks in convs else "resize",
    }
    params.update(kwargs)
    net = ResnetGenerator(**params)
    _load(net, state, name, "CycleGAN ResnetGenerator")
    return net


def _is_official_unet(state: StateDict) -> bool:
    """Whether ``state`` (keys without ``module.``) looks like the reference's U-Net: its outermost block's first
    layer, a 4x4 conv, at ``model.model.0``."""
    first = state.get("model.model.0.weight")
    return first is not None and first.dim() == 4 and first.shape[-2:] == (4, 4)


def _unet_from_official(state: StateDict, name: str, kwargs: dict[str, Any]) -> UnetGenerator:
    first = state["model.model.0.weight"]  # (ngf, in, 4, 4)
    last = state.get("model.model.3.weight")  # transposed: (2 ngf, out, 4, 4)
    if last is None or last.dim() != 4:
        raise CheckpointError(
            f"{name} has a 4x4 conv model.model.0.weight but no up conv model.model.3.weight: it is not a whole "
            "official pix2pix U-Net generator state dict: pass latest_net_G.pth as the reference saved it"
        )
    # Level k's own layers sit under k nested ``model``s ("model.model.1.model.3.model.1.weight": level 3), so the
    # deepest key names the number of levels.
    num_downs = max(key.split(".").count("model") for key in state) - 1
    params: dict[str, Any] = {
        "in_channels": first.shape[1],
        "out_channels": last.shape[1],
        "num_downs": num_downs,
        "ngf": first.shape[0],
        # Affine BatchNorms have 1-D weights; the reference's InstanceNorms have none.
        "norm": "batch" if any(k.endswith(".weight") and v.dim() == 1 for k, v in state.items()) else "instance",
        # Dropout has no weights to tell; pix2pix trains with it (and its test script keeps it on).
        "use_dropout": True,
    }
    params.update(kwargs)
    net = UnetGenerator(**params)
    _load(net, state, name, "pix2pix UnetGenerator")
    return net


def discriminator_from_official(source: str | Path | StateDict, **kwargs: Any) -> PatchDiscriminator:
    """A :class:`PatchDiscriminator` holding the weights of an official ``basic`` / ``n_layers`` D.

    ``kwargs`` (any of :class:`PatchDiscriminator`'s arguments) override what is read off the weights.
    It returns logits, as the reference does without ``use_sigmoid``.
    """
    what = "CycleGAN NLayerDiscriminator .pth (e.g. latest_net_D_A.pth)"
    state, name = read_state_dict(source, f"an official {what}")
    convs = _top_level_convs(state)
    first = convs.get(0)
    if first is None or first[-2:] != (4, 4) or len(convs) < 3:
        raise CheckpointError(
            f"{name} has no 4x4 conv model.0.weight: it is not an official CycleGAN NLayerDiscriminator state dict "
            "(for a generator use generator_from_official)"
        )
    shapes = [convs[i] for i in sorted(convs)]
    # n_layers=0 and n_layers=1 both have three convs; only the former keeps ndf channels in the middle one.
    n_layers = 0 if len(shapes) == 3 and shapes[1][0] == first[0] else len(shapes) - 2
    params: dict[str, Any] = {
        "in_channels": first[1],
        "ndf": first[0],
        "n_layers": n_layers,
        "norm": _norm(state),
    }
    params.update(kwargs)
    net = PatchDiscriminator(**params)
    _load(net, state, name, "CycleGAN PatchDiscriminator")
    return net


def _drop_stale_instance_norm_stats(net: nn.Module, state: StateDict) -> StateDict:
    """Remove the running-statistics entries of InstanceNorm layers that keep none, as the reference does."""
    kept = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        try:
            module = net.get_submodule(prefix)
        except AttributeError:
            module = None
        if isinstance(module, nn.modules.instancenorm._InstanceNorm) and (
            leaf == "num_batches_tracked" or (leaf in ("running_mean", "running_var") and getattr(module, leaf) is None)
        ):
            continue
        kept[key] = value
    return kept


def _load(net: nn.Module, state: StateDict, name: str, kind: str) -> None:
    try:
        net.load_state_dict(_drop_stale_instance_norm_stats(net, state))
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines()]
        detail = " ".join(lines[1:] or lines)
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        raise CheckpointError(
            f"{name} does not fit ganzoo's {kind} layout ({detail}): pass the sizes it was trained with"
        ) from None
