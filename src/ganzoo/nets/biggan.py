"""BigGAN generator and discriminator (Brock et al. 2019), laid out like ajbrock/BigGAN-PyTorch's ``BigGAN.py``.

Module names follow the reference (the plain-BN, non-cross-replica variant), so its ``G.pth``,
``G_ema.pth`` and ``D.pth`` load with ``load_state_dict`` unchanged::

    G: shared (when shared=True), linear, blocks.<i>.0 (GBlock: conv1, conv2, conv_sc, bn1, bn2),
       blocks.<i>.1 (SelfAttention: theta, phi, g, o, gamma), output_layer.{0: BatchNorm, 1: ReLU, 2: conv}
    D: blocks.<i>.0 (DBlock: conv1, conv2, conv_sc), blocks.<i>.1 (SelfAttention), linear, embed

Two differences in calling convention: the generator takes class ids (or class mixtures) and embeds
them itself (the reference expects ``G.shared(y)`` precomputed; :meth:`BigGANGenerator.class_embedding`
is that step), and the discriminator returns (N,) instead of (N, 1) when ``output_dim`` is 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import ConfigError
from ganzoo.nets.layers import (
    BatchNorm,
    ClassConditionalBatchNorm,
    ClassEmbedding,
    SelfAttention,
    SNConv2d,
    SNEmbedding,
    SNLinear,
)

Attention = str | int | Sequence[int] | None
INITS = ("ortho", "N02", "glorot", "xavier")

# Channel multipliers of ``ch`` per block: (inputs, outputs). G blocks all upsample x2 from 4x4.
_G_ARCH: dict[int, tuple[list[int], list[int]]] = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
}
# D: (inputs after the image, outputs, downsample per block, nominal resolution per block). The
# resolutions decide where attention goes; for 32 px the reference labels every block 16.
_D_ARCH: dict[int, tuple[list[int], list[int], list[bool], list[int]]] = {
    32: ([4, 4, 4], [4, 4, 4, 4], [True, True, False, False], [16, 16, 16, 16]),
    64: ([1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False], [32, 16, 8, 4, 4]),
    128: ([1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False], [64, 32, 16, 8, 4, 4]),
    256: ([1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False], [128, 64, 32, 16, 8, 4, 4]),
}


@dataclass(frozen=True)
class BlockSpec:
    """One residual block: channels, whether it resamples (G: up, D: down), its resolution, attention after it."""

    in_channels: int
    out_channels: int
    resample: bool
    resolution: int
    attention: bool


def parse_attention(attention: Attention) -> frozenset[int]:
    """Resolutions that get self-attention: ``"64"``, ``"32_64"``, ``64``, ``[32, 64]``; ``"0"``, 0 or None: none."""
    if attention is None:
        return frozenset()
    items: Sequence[object]
    if isinstance(attention, str):
        items = attention.split("_")
    elif isinstance(attention, int) and not isinstance(attention, bool):
        items = [attention]
    elif isinstance(attention, Sequence):
        items = list(attention)
    else:
        items = [attention]
    try:
        resolutions = {int(str(item)) for item in items}
    except ValueError:
        resolutions = {-1}
    if any(r < 0 for r in resolutions):
        raise ConfigError(f"BigGAN attention={attention!r} is not understood: use e.g. attention='64', '32_64' or 0")
    return frozenset(resolutions - {0})


def _check_resolution(resolution: int) -> None:
    if resolution not in _G_ARCH:
        raise ConfigError(f"BigGAN resolution={resolution!r} is not supported: use resolution=32, 64, 128 or 256")


def generator_arch(resolution: int, ch: int = 64, attention: Attention = "64") -> list[BlockSpec]:
    """The reference's ``G_arch(ch, attention)[resolution]`` as one spec per block (block i outputs 8 * 2^i px)."""
    _check_resolution(resolution)
    wanted = parse_attention(attention)
    ins, outs = _G_ARCH[resolution]
    return [
        BlockSpec(ch * cin, ch * cout, True, 8 * 2**i, 8 * 2**i in wanted)
        for i, (cin, cout) in enumerate(zip(ins, outs, strict=True))
    ]


def discriminator_arch(
    resolution: int, ch: int = 64, attention: Attention = "64", channels: int = 3
) -> list[BlockSpec]:
    """The reference's ``D_arch(ch, attention)[resolution]`` (first input = ``channels``), one spec per block."""
    _check_resolution(resolution)
    wanted = parse_attention(attention)
    ins, outs, down, res = _D_ARCH[resolution]
    ins = [channels] + [ch * m for m in ins]
    return [BlockSpec(cin, ch * cout, d, r, r in wanted) for cin, cout, d, r in zip(ins, outs, down, res, strict=True)]


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ConfigError(f"BigGAN init={init!r} is not supported: use init=ortho, N02, glorot or xavier")


def init_weights(net: nn.Module, init: str) -> None:
    """The reference's ``init_weights``: every Conv2d/Linear/Embedding weight (SN ones too); biases keep torch's."""
    _check_init(init)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
            if init == "ortho":
                nn.init.orthogonal_(m.weight)
            elif init == "N02":
                nn.init.normal_(m.weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(m.weight)


class GBlock(nn.Module):
    """Generator residual block: BN-ReLU-(up)-conv-BN-ReLU-conv plus a (up)-1x1-conv shortcut.

    ``which_conv(in, out)`` must build a 3x3 "same" conv (it is called with ``kernel_size=1, padding=0``
    for the shortcut); ``which_bn(C)`` a norm called as ``bn(x, y)``. The shortcut conv exists when the
    channels change or the block upsamples (nearest x2). Input (N, in, H, W) -> (N, out, 2H or H, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        which_conv: Callable[..., nn.Module],
        which_bn: Callable[[int], nn.Module],
        upsample: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.upsample = in_channels, out_channels, upsample
        # Same construction order as the reference, so a seed gives the same initial weights.
        self.conv1 = which_conv(in_channels, out_channels)
        self.conv2 = which_conv(out_channels, out_channels)
        self.learnable_sc = in_channels != out_channels or upsample
        if self.learnable_sc:
            self.conv_sc = which_conv(in_channels, out_channels, kernel_size=1, padding=0)
        self.bn1 = which_bn(in_channels)
        self.bn2 = which_bn(out_channels)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = F.relu(self.bn1(x, y))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2)
            x = F.interpolate(x, scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        if self.learnable_sc:
            x = self.conv_sc(x)
        return h + x


class DBlock(nn.Module):
    """Discriminator residual block: [ReLU]-conv-ReLU-conv-(avgpool) plus a 1x1-conv shortcut.

    ``wide``: the hidden width is ``out_channels`` (BigGAN, SA-GAN) rather than ``in_channels`` (SN-GAN).
    ``preactivation``: ReLU the input first (every block but the first, which sees the image). The shortcut
    conv exists when the channels change or the block downsamples (2x2 average pool); it is conv-then-pool
    with pre-activation and pool-then-conv without, as in the reference. (N, in, H, W) -> (N, out, H/2 or H, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        which_conv: Callable[..., nn.Module] = SNConv2d,
        wide: bool = True,
        preactivation: bool = False,
        downsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.preactivation, self.downsample = preactivation, downsample
        hidden = out_channels if wide else in_channels
        self.conv1 = which_conv(in_channels, hidden)
        self.conv2 = which_conv(hidden, out_channels)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = which_conv(in_channels, out_channels, kernel_size=1, padding=0)

    def shortcut(self, x: Tensor) -> Tensor:
        if self.preactivation:
            if self.learnable_sc:
                x = self.conv_sc(x)
            if self.downsample:
                x = F.avg_pool2d(x, 2)
        else:
            if self.downsample:
                x = F.avg_pool2d(x, 2)
            if self.learnable_sc:
                x = self.conv_sc(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        # Out of place: the shortcut must see the input before the ReLU.
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)


class BigGANGenerator(nn.Module):
    """Class-conditional generator: (z, class) -> image.

    Args:
        resolution: 32, 64, 128 or 256 (the reference's architecture tables).
        channels: output image channels (the reference hard-codes 3; 1 for greyscale data).
        ch: channel multiplier.
        dim_z: latent size; with ``hier`` it is rounded down to a multiple of the number of slots
            (``self.dim_z`` holds the final value).
        n_classes: number of classes.
        shared: one class embedding (``shared``, ``shared_dim`` wide) feeds SN linear layers in every
            conditional BN; otherwise each conditional BN has its own (num_classes, C) embeddings.
        shared_dim: width of the shared embedding, 0 for ``dim_z``.
        hier: split z into one chunk for ``linear`` and one per block, appended to the class embedding.
        attention: resolutions with self-attention: ``"64"``, ``"32_64"``, an int, a list, ``"0"``/None.
        bottom_width: side of the first feature map (the output side is ``bottom_width * 2^blocks``).
        num_svs, num_sv_itrs, sn_eps: spectral norm settings (singular values tracked, steps per call, eps).
        bn_eps: eps of the class-conditional BNs (the output BN keeps 1e-5, as in the reference).
        init: weight init, ``"ortho"``, ``"N02"``, ``"glorot"`` or ``"xavier"``.

    ``forward(z (N, dim_z) standard normal, y)`` -> (N, channels, R, R) in [-1, 1], where ``y`` is int64
    class ids (N,) or float class mixtures (N, n_classes).
    """

    def __init__(
        self,
        resolution: int = 128,
        channels: int = 3,
        ch: int = 64,
        dim_z: int = 128,
        n_classes: int = 1000,
        shared: bool = True,
        shared_dim: int = 0,
        hier: bool = False,
        attention: Attention = "64",
        bottom_width: int = 4,
        num_svs: int = 1,
        num_sv_itrs: int = 1,
        sn_eps: float = 1e-12,
        bn_eps: float = 1e-5,
        init: str = "ortho",
    ) -> None:
        super().__init__()
        _check_init(init)
        specs = generator_arch(resolution, ch, attention)
        if hier and not shared:
            raise ConfigError("BigGAN hier=True needs shared=True: set shared=true or hier=false")
        self.resolution, self.channels, self.n_classes = resolution, channels, n_classes
        self.hier, self.bottom_width = hier, bottom_width
        self.shared_dim = shared_dim if shared_dim > 0 else dim_z
        # hier: one z chunk for the linear layer and one per block, all of equal size.
        self.num_slots = len(specs) + 1 if hier else 1
        self.z_chunk_size = dim_z // self.num_slots if hier else 0
        if hier and self.z_chunk_size == 0:
            raise ConfigError(f"BigGAN hier=True splits z into {self.num_slots} chunks: use dim_z >= {self.num_slots}")
        self.dim_z = self.z_chunk_size * self.num_slots if hier else dim_z

        sn = {"num_svs": num_svs, "num_itrs": num_sv_itrs, "eps": sn_eps}
        which_conv = functools.partial(SNConv2d, kernel_size=3, padding=1, **sn)
        which_linear = functools.partial(SNLinear, **sn)
        # The class embeddings are not spectrally normalized: per the reference, SN there cripples G.
        bn_linear: Callable[[int, int], nn.Module]
        if shared:
            bn_linear, bn_input = functools.partial(which_linear, bias=False), self.shared_dim + self.z_chunk_size
        else:
            bn_linear, bn_input = ClassEmbedding, n_classes
        which_bn = functools.partial(ClassConditionalBatchNorm, input_size=bn_input, which_linear=bn_linear, eps=bn_eps)

        self.shared: nn.Module = ClassEmbedding(n_classes, self.shared_dim) if shared else nn.Identity()
        self.linear = which_linear(self.dim_z // self.num_slots, specs[0].in_channels * bottom_width**2)
        self.blocks = nn.ModuleList()
        for spec in specs:
            layers: list[nn.Module] = [GBlock(spec.in_channels, spec.out_channels, which_conv, which_bn, spec.resample)]
            if spec.attention:
                layers.append(SelfAttention(spec.out_channels, which_conv))
            self.blocks.append(nn.ModuleList(layers))
        last = specs[-1].out_channels
        self.output_layer = nn.Sequential(BatchNorm(last), nn.ReLU(), which_conv(last, channels))
        init_weights(self, init)

    def class_embedding(self, y: Tensor) -> Tensor:
        """What every conditional BN sees of the class: ``shared(y)`` (N, shared_dim), or ``y`` itself if not shared."""
        return self.shared(y)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim_z:
            raise ConfigError(f"BigGANGenerator expects z of shape (N, {self.dim_z}), got {tuple(z.shape)}: resize z")
        e = self.class_embedding(y)
        if self.hier:
            first, *rest = torch.split(z, self.z_chunk_size, dim=1)
            conds = [torch.cat([e, chunk], dim=1) for chunk in rest]
        else:
            first, conds = z, [e] * len(self.blocks)
        h = self.linear(first).view(z.shape[0], -1, self.bottom_width, self.bottom_width)
        for cond, layers in zip(conds, self.blocks, strict=True):
            for layer in layers:
                h = layer(h, cond)
        return torch.tanh(self.output_layer(h))


class BigGANDiscriminator(nn.Module):
    """Projection discriminator: (image, class id) -> real/fake logit.

    Args:
        resolution: 32, 64, 128 or 256; ``channels``: input image channels; ``ch``: channel multiplier.
        n_classes: number of classes; ``attention``: as for the generator (D's table labels blocks by the
            resolution they output, 16 for every block at 32 px).
        wide: hidden width of each block = its output width (BigGAN) instead of its input width (SN-GAN).
        num_svs, num_sv_itrs, sn_eps, init: as for the generator.
        output_dim: number of logits per image.

    ``forward(x (N, channels, R, R) in [-1, 1], y int64 (N,))``: with h the ReLU'd features summed over
    space, ``linear(h) + <embed(y), h>``; shape (N,) when ``output_dim`` is 1, else (N, output_dim).
    """

    def __init__(
        self,
        resolution: int = 128,
        channels: int = 3,
        ch: int = 64,
        n_classes: int = 1000,
        attention: Attention = "64",
        wide: bool = True,
        num_svs: int = 1,
        num_sv_itrs: int = 1,
        sn_eps: float = 1e-12,
        init: str = "ortho",
        output_dim: int = 1,
    ) -> None:
        super().__init__()
        _check_init(init)
        specs = discriminator_arch(resolution, ch, attention, channels)
        self.resolution, self.channels, self.n_classes, self.output_dim = resolution, channels, n_classes, output_dim
        sn = {"num_svs": num_svs, "num_itrs": num_sv_itrs, "eps": sn_eps}
        which_conv = functools.partial(SNConv2d, kernel_size=3, padding=1, **sn)
        self.blocks = nn.ModuleList()
        for index, spec in enumerate(specs):
            block = DBlock(spec.in_channels, spec.out_channels, which_conv, wide, index > 0, spec.resample)
            layers: list[nn.Module] = [block]
            if spec.attention:
                layers.append(SelfAttention(spec.out_channels, which_conv))
            self.blocks.append(nn.ModuleList(layers))
        last = specs[-1].out_channels
        self.linear = SNLinear(last, output_dim, **sn)
        self.embed = SNEmbedding(n_classes, last, **sn)
        init_weights(self, init)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = x
        for layers in self.blocks:
            for layer in layers:
                h = layer(h)
        h = torch.sum(F.relu(h), dim=(2, 3))  # (N, C): global sum pooling as in SN-GAN
        out = self.linear(h) + torch.sum(self.embed(y) * h, dim=1, keepdim=True)
        return out.squeeze(1) if self.output_dim == 1 else out
