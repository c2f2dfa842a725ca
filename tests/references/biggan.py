"""An independent witness for the BigGAN importer: ajbrock/BigGAN-PyTorch's eval-mode forward, written functionally.

It works on a state dict with BigGAN-PyTorch's key names (``G.pth`` / ``G_ema.pth`` / ``D.pth``) and a config
saying which architecture the file holds; it never imports :mod:`ganzoo.nets`, so an importer or network that
misreads a key or a formula cannot agree with it by accident. :func:`generator_state` and
:func:`discriminator_state` write random state dicts in that layout (realistic spectral-norm buffers, positive
variances), :func:`generator_forward` and :func:`discriminator_forward` run them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

StateDict = dict[str, torch.Tensor]

# Channel multipliers of ch per block (block inputs, block outputs), as BigGAN-PyTorch's G_arch / D_arch lay them out.
_G_WIDTHS: dict[int, tuple[list[int], list[int]]] = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}
_D_OUT_WIDTHS: dict[int, list[int]] = {
    32: [4, 4, 4, 4],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
    512: [1, 1, 2, 4, 8, 8, 16, 16],
}


def parse_attention(attention: str) -> set[int]:
    """``"32_64"`` -> {32, 64}; ``"0"`` (the reference's "none") -> {}."""
    return {int(item) for item in attention.split("_")} - {0}


@dataclass
class GConfig:
    """The reference Generator's constructor arguments that shape its state dict and forward."""

    resolution: int = 128
    ch: int = 4
    dim_z: int = 120
    n_classes: int = 5
    shared: bool = True
    shared_dim: int = 128
    hier: bool = True
    attention: str = "64"
    channels: int = 3
    bottom_width: int = 4
    num_svs: int = 1
    sn_eps: float = 1e-12
    bn_eps: float = 1e-5

    @property
    def in_channels(self) -> list[int]:
        return [self.ch * m for m in _G_WIDTHS[self.resolution][0]]

    @property
    def out_channels(self) -> list[int]:
        return [self.ch * m for m in _G_WIDTHS[self.resolution][1]]

    @property
    def block_resolutions(self) -> list[int]:
        # Fixed labels 8, 16, ... in the reference, whatever bottom_width is.
        return [8 * 2**i for i in range(len(self.out_channels))]

    @property
    def z_chunk(self) -> int:
        """Size of each of the blocks + 1 slices of z under ``hier``; 0 without it."""
        return self.dim_z // (len(self.out_channels) + 1) if self.hier else 0

    @property
    def final_dim_z(self) -> int:
        """The reference rounds dim_z down to a multiple of the slot count under ``hier``."""
        return self.z_chunk * (len(self.out_channels) + 1) if self.hier else self.dim_z

    @property
    def embed_dim(self) -> int:
        """Width of ``shared`` (shared_dim 0 means dim_z, as the reference has it)."""
        return self.shared_dim if self.shared_dim > 0 else self.dim_z


@dataclass
class DConfig:
    """The reference Discriminator's constructor arguments that shape its state dict and forward."""

    resolution: int = 128
    ch: int = 4
    n_classes: int = 5
    attention: str = "64"
    wide: bool = True
    channels: int = 3
    num_svs: int = 1
    output_dim: int = 1
    sn_eps: float = 1e-12

    @property
    def out_channels(self) -> list[int]:
        return [self.ch * m for m in _D_OUT_WIDTHS[self.resolution]]

    @property
    def in_channels(self) -> list[int]:
        return [self.channels, *self.out_channels[:-1]]

    @property
    def downsample(self) -> list[bool]:
        n = len(self.out_channels)
        return [True, True, False, False] if self.resolution == 32 else [True] * (n - 1) + [False]

    @property
    def block_resolutions(self) -> list[int]:
        # The reference labels every 32 px block "16"; elsewhere resolution / 2, / 4, ... floored at 4.
        if self.resolution == 32:
            return [16] * 4
        return [max(self.resolution // 2 ** (i + 1), 4) for i in range(len(self.out_channels))]


# --------------------------------------------------------------------------------------------- random state dicts


def _sn_layer(
    state: StateDict, prefix: str, shape: tuple[int, ...], num_svs: int, gen: torch.Generator, bias: bool = True
) -> None:
    """An SN layer's ``weight`` (+ ``bias``), ``u0..`` (1, out) and ``sv0..`` (1,) as training leaves them.

    ``u0`` is three power-iteration steps from random (near, not at, the top singular vector, as after training)
    and ``sv0`` the value the last of those steps logs; the eval forward recomputes sigma from ``u0`` instead.
    """
    weight = torch.randn(shape, generator=gen)
    state[prefix + "weight"] = weight
    if bias:
        state[prefix + "bias"] = 0.1 * torch.randn(shape[0], generator=gen)
    mat = weight.reshape(shape[0], -1)
    u = F.normalize(torch.randn(1, shape[0], generator=gen))
    for _ in range(3):
        v = F.normalize(u @ mat)
        u = F.normalize(v @ mat.t())
    sigma = (v @ mat.t() @ u.t()).reshape(1)
    state[prefix + "u0"], state[prefix + "sv0"] = u, sigma
    # Later singular vectors never reach the forward (only sigma_0 divides the weight): random is enough.
    for k in range(1, num_svs):
        state[f"{prefix}u{k}"] = F.normalize(torch.randn(1, shape[0], generator=gen))
        state[f"{prefix}sv{k}"] = 0.5 * sigma


def _bn_stats(state: StateDict, prefix: str, c: int, gen: torch.Generator) -> None:
    state[prefix + "stored_mean"] = 0.2 * torch.randn(c, generator=gen)
    state[prefix + "stored_var"] = 0.5 + torch.rand(c, generator=gen)


def _attention(state: StateDict, prefix: str, c: int, num_svs: int, gen: torch.Generator) -> None:
    for name, (out, inp) in {"theta": (c // 8, c), "phi": (c // 8, c), "g": (c // 2, c), "o": (c, c // 2)}.items():
        _sn_layer(state, f"{prefix}{name}.", (out, inp, 1, 1), num_svs, gen, bias=False)
    # Non-zero (it starts at 0 in training) so that a wrong attention path shows in the outputs.
    state[prefix + "gamma"] = torch.tensor(0.7)


def generator_state(cfg: GConfig, seed: int = 0) -> StateDict:
    """A random ``G.pth``-layout state dict for ``cfg`` (non-myBN; see :func:`to_mybn`)."""
    gen = torch.Generator().manual_seed(seed)
    state: StateDict = {}
    n = cfg.num_svs
    cond = cfg.embed_dim + cfg.z_chunk
    if cfg.shared:
        state["shared.weight"] = torch.randn(cfg.n_classes, cfg.embed_dim, generator=gen)
    z_in = cfg.z_chunk if cfg.hier else cfg.dim_z
    _sn_layer(state, "linear.", (cfg.in_channels[0] * cfg.bottom_width**2, z_in), n, gen)
    attention = parse_attention(cfg.attention)
    for i, (cin, cout) in enumerate(zip(cfg.in_channels, cfg.out_channels, strict=True)):
        p = f"blocks.{i}.0."
        for bn, c in (("bn1", cin), ("bn2", cout)):
            for part in ("gain", "bias"):
                if cfg.shared:
                    _sn_layer(state, f"{p}{bn}.{part}.", (c, cond), n, gen, bias=False)
                else:
                    state[f"{p}{bn}.{part}.weight"] = 0.2 * torch.randn(cfg.n_classes, c, generator=gen)
            _bn_stats(state, f"{p}{bn}.", c, gen)
        _sn_layer(state, p + "conv1.", (cout, cin, 3, 3), n, gen)
        _sn_layer(state, p + "conv2.", (cout, cout, 3, 3), n, gen)
        _sn_layer(state, p + "conv_sc.", (cout, cin, 1, 1), n, gen)  # G always upsamples, so always a learnable sc
        if cfg.block_resolutions[i] in attention:
            _attention(state, f"blocks.{i}.1.", cout, n, gen)
    c = cfg.out_channels[-1]
    state["output_layer.0.gain"] = 1 + 0.2 * torch.randn(c, generator=gen)
    state["output_layer.0.bias"] = 0.1 * torch.randn(c, generator=gen)
    _bn_stats(state, "output_layer.0.", c, gen)
    _sn_layer(state, "output_layer.2.", (cfg.channels, c, 3, 3), n, gen)
    return state


def to_mybn(state: StateDict, counter: float = 0.0) -> StateDict:
    """The same G saved with ``--mybn``: stats under ``.bn.``; with ``counter`` > 0 as standing-stat sums."""
    out: StateDict = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in ("stored_mean", "stored_var"):
            out[f"{prefix}.bn.{leaf}"] = value * counter if counter > 0 else value.clone()
            out[f"{prefix}.bn.accumulation_counter"] = torch.full((1,), float(counter))
        else:
            out[key] = value
    return out


def discriminator_state(cfg: DConfig, seed: int = 0) -> StateDict:
    """A random ``D.pth``-layout state dict for ``cfg``."""
    gen = torch.Generator().manual_seed(seed)
    state: StateDict = {}
    n = cfg.num_svs
    attention = parse_attention(cfg.attention)
    for i, (cin, cout, down) in enumerate(zip(cfg.in_channels, cfg.out_channels, cfg.downsample, strict=True)):
        p = f"blocks.{i}.0."
        hidden = cout if cfg.wide else cin
        _sn_layer(state, p + "conv1.", (hidden, cin, 3, 3), n, gen)
        _sn_layer(state, p + "conv2.", (cout, hidden, 3, 3), n, gen)
        if cin != cout or down:
            _sn_layer(state, p + "conv_sc.", (cout, cin, 1, 1), n, gen)
        if cfg.block_resolutions[i] in attention:
            _attention(state, f"blocks.{i}.1.", cout, n, gen)
    c = cfg.out_channels[-1]
    _sn_layer(state, "linear.", (cfg.output_dim, c), n, gen)
    # SNEmbedding normalises over classes: weight (n_classes, C), u (1, n_classes).
    _sn_layer(state, "embed.", (cfg.n_classes, c), n, gen, bias=False)
    return state


# --------------------------------------------------------------------------------------------- eval-mode forward


def sn_weight(state: StateDict, prefix: str, eps: float) -> torch.Tensor:
    """``weight / sigma`` with sigma from one power-iteration step from the stored ``u0``, which eval leaves as is.

    Only the first singular value divides the weight, and in eval every one of the num_itrs steps starts from the
    same stored u, so one step from ``u0`` is the whole computation; the stored ``sv0`` is a training log only.
    """
    weight = state[prefix + "weight"]
    mat = weight.reshape(weight.shape[0], -1)
    v = F.normalize(state[prefix + "u0"] @ mat, eps=eps)  # (1, in)
    u = F.normalize(v @ mat.t(), eps=eps)  # (1, out)
    sigma = (v @ mat.t() @ u.t()).squeeze()
    return weight / sigma


def _conv(state: StateDict, prefix: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    w = sn_weight(state, prefix, eps)
    return F.conv2d(x, w, state.get(prefix + "bias"), padding=w.shape[-1] // 2)


def _linear(state: StateDict, prefix: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    return F.linear(x, sn_weight(state, prefix, eps), state.get(prefix + "bias"))


def _normalise(state: StateDict, prefix: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) with the stored statistics, from either layout.

    A myBN file keeps them under ``<prefix>bn.``; a positive ``accumulation_counter`` means they are standing-stat
    sums, which myBN divides by the counter in eval. Its fused ``x * scale - shift`` is this same affine map.
    """
    if prefix + "bn.stored_mean" in state:
        mean, var = state[prefix + "bn.stored_mean"], state[prefix + "bn.stored_var"]
        count = state[prefix + "bn.accumulation_counter"]
        if count.item() > 0:
            mean, var = mean / count, var / count
    else:
        mean, var = state[prefix + "stored_mean"], state[prefix + "stored_var"]
    mean, var = mean.view(1, -1, 1, 1), var.view(1, -1, 1, 1)
    return (x - mean) * torch.rsqrt(var + eps)


def _ccbn(state: StateDict, prefix: str, x: torch.Tensor, cond: torch.Tensor, cfg: GConfig) -> torch.Tensor:
    """Class-conditional BN: stored-stat normalisation, then per-sample ``(1 + gain(cond))`` and ``bias(cond)``."""
    if cfg.shared:
        gain = 1 + F.linear(cond, sn_weight(state, prefix + "gain.", cfg.sn_eps))
        bias = F.linear(cond, sn_weight(state, prefix + "bias.", cfg.sn_eps))
    else:
        gain = 1 + F.embedding(cond, state[prefix + "gain.weight"])
        bias = F.embedding(cond, state[prefix + "bias.weight"])
    return _normalise(state, prefix, x, cfg.bn_eps) * gain[:, :, None, None] + bias[:, :, None, None]


def _attention_forward(state: StateDict, prefix: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    """SA-GAN non-local block: keys/values max-pooled 2x2, softmax over the pooled positions, ``gamma * o + x``."""
    n, c, h, w = x.shape
    theta = _conv(state, prefix + "theta.", x, eps).reshape(n, c // 8, h * w)
    phi = F.max_pool2d(_conv(state, prefix + "phi.", x, eps), 2).reshape(n, c // 8, h * w // 4)
    g = F.max_pool2d(_conv(state, prefix + "g.", x, eps), 2).reshape(n, c // 2, h * w // 4)
    beta = F.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (N, HW, HW/4)
    o = _conv(state, prefix + "o.", (g @ beta.transpose(1, 2)).reshape(n, c // 2, h, w), eps)
    return state[prefix + "gamma"] * o + x


@torch.no_grad()
def generator_forward(state: StateDict, cfg: GConfig, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Images (N, channels, R, R) in [-1, 1] from z (N, final_dim_z) and class ids y (N,), in eval mode.

    The reference's forward takes ``G.shared(y)``; the lookup is done here so that callers pass class ids.
    """
    eps = cfg.sn_eps
    emb = F.embedding(y, state["shared.weight"]) if cfg.shared else y
    n_blocks = len(cfg.out_channels)
    if cfg.hier:
        zs = torch.split(z, cfg.z_chunk, dim=1)
        z, conds = zs[0], [torch.cat([emb, zi], dim=1) for zi in zs[1:]]
    else:
        conds = [emb] * n_blocks
    h = _linear(state, "linear.", z, eps).reshape(z.shape[0], -1, cfg.bottom_width, cfg.bottom_width)
    attention = parse_attention(cfg.attention)
    for i in range(n_blocks):
        p = f"blocks.{i}.0."
        x = F.interpolate(h, scale_factor=2)
        h = F.relu(_ccbn(state, p + "bn1.", h, conds[i], cfg))
        h = _conv(state, p + "conv1.", F.interpolate(h, scale_factor=2), eps)
        h = _conv(state, p + "conv2.", F.relu(_ccbn(state, p + "bn2.", h, conds[i], cfg)), eps)
        h = h + _conv(state, p + "conv_sc.", x, eps)
        if cfg.block_resolutions[i] in attention:
            h = _attention_forward(state, f"blocks.{i}.1.", h, eps)
    # The output BN is built without BN_eps in the reference, so it keeps nn's 1e-5 whatever --BN_eps says.
    gain, bias = state["output_layer.0.gain"].view(1, -1, 1, 1), state["output_layer.0.bias"].view(1, -1, 1, 1)
    h = _normalise(state, "output_layer.0.", h, 1e-5) * gain + bias
    return torch.tanh(_conv(state, "output_layer.2.", F.relu(h), eps))


@torch.no_grad()
def discriminator_forward(state: StateDict, cfg: DConfig, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits (N, output_dim) for images x (N, channels, R, R) and class ids y (N,): ``linear(h) + <embed(y), h>``."""
    eps = cfg.sn_eps
    h = x
    attention = parse_attention(cfg.attention)
    for i, (cin, cout, down) in enumerate(zip(cfg.in_channels, cfg.out_channels, cfg.downsample, strict=True)):
        p = f"blocks.{i}.0."
        skip = h
        # Block 0 sees images, so no pre-activation; later blocks ReLU first (out of place: the skip keeps raw x).
        r = _conv(state, p + "conv1.", F.relu(h) if i > 0 else h, eps)
        r = _conv(state, p + "conv2.", F.relu(r), eps)
        if down:
            r = F.avg_pool2d(r, 2)
        if cin != cout or down:
            # Pre-activated blocks convolve then pool; block 0 pools then convolves.
            if i > 0:
                skip = _conv(state, p + "conv_sc.", skip, eps)
                skip = F.avg_pool2d(skip, 2) if down else skip
            else:
                skip = _conv(state, p + "conv_sc.", F.avg_pool2d(skip, 2) if down else skip, eps)
        h = r + skip
        if cfg.block_resolutions[i] in attention:
            h = _attention_forward(state, f"blocks.{i}.1.", h, eps)
    h = torch.sum(F.relu(h), dim=(2, 3))
    embed = F.embedding(y, sn_weight(state, "embed.", eps))
    return _linear(state, "linear.", h, eps) + torch.sum(embed * h, dim=1, keepdim=True)
