"""pytorch/examples' ``dcgan`` weights (``netG_epoch_*.pth``, ``netD_epoch_*.pth``) in ganzoo's DCGAN nets.

The reference saves ``state_dict()`` of modules whose layers sit in ``main`` in the order ganzoo's nets
use, so the keys match; sizes (nz, ngf/ndf, channels, image size) are read off the weight shapes.
Files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganzoo.errors import CheckpointError
from ganzoo.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganzoo.weights.state_dict import StateDict, read_state_dict


def _conv_shapes(state: StateDict, name: str) -> list[torch.Size]:
    """Shapes of the conv weights ``main.<i>.weight`` in layer order."""
    convs = sorted((int(k.split(".")[1]), v.shape) for k, v in state.items() if k.startswith("main.") and v.dim() == 4)
    if not convs:
        raise CheckpointError(
            f"{name} has no main.<i>.weight conv layers: it is not a pytorch/examples DCGAN state dict"
        )
    return [shape for _, shape in convs]


def generator_from_reference(source: str | Path | StateDict) -> DCGANGenerator:
    """A :class:`DCGANGenerator` holding the weights of a reference ``netG`` (path or state dict)."""
    state, name = read_state_dict(source, "netG_*.pth / netD_*.pth")
    shapes = _conv_shapes(state, name)
    # Transposed conv weights are (in, out, k, k): the first takes nz, the last gives the image channels.
    nz, channels, ngf = shapes[0][0], shapes[-1][1], shapes[-1][0]
    net = DCGANGenerator(image_size=4 * 2 ** (len(shapes) - 1), channels=channels, nz=nz, ngf=ngf)
    _load(net, state, name)
    return net


def discriminator_from_reference(source: str | Path | StateDict) -> DCGANDiscriminator:
    """A :class:`DCGANDiscriminator` holding the weights of a reference ``netD`` (path or state dict).

    It returns logits; the reference's output is ``torch.sigmoid`` of them.
    """
    state, name = read_state_dict(source, "netG_*.pth / netD_*.pth")
    shapes = _conv_shapes(state, name)
    net = DCGANDiscriminator(image_size=4 * 2 ** (len(shapes) - 1), channels=shapes[0][1], ndf=shapes[0][0])
    _load(net, state, name)
    return net


def _load(net: torch.nn.Module, state: StateDict, name: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{name} does not fit ganzoo's DCGAN layout ({first})") from None
