"""BigGAN's building blocks, with the state-dict names of ajbrock/BigGAN-PyTorch's ``layers.py``.

Spectral norm (Miyato et al. 2018) divides a weight by its largest singular value, estimated by power
iteration with vectors kept between steps. This is a small mixin instead of
``torch.nn.utils.parametrizations.spectral_norm`` because:

* the reference stores ``weight`` itself plus buffers ``u0..u{k-1}`` of shape (1, out) and ``sv0..`` of
  shape (1,); torch stores ``parametrizations.weight.original`` and ``_u``/``_v``, so the reference's
  ``G.pth``/``D.pth`` would not load;
* the reference can track ``num_svs > 1`` singular values, keeping the vectors apart by Gram-Schmidt;
* in eval mode the reference still takes a power-iteration step from the stored ``u`` (without storing
  it), whereas torch's parametrization reuses the stored ``u`` and ``v`` as they are; matching that
  keeps imported weights' outputs identical;
* the power iteration and the division run in float32 with autocast off, so bf16/fp16 autocast does not
  make the stored vectors drift.

For ``num_svs=1`` and a converged iteration the sigma is the same as torch's (the tests check it).

The batch norms keep their statistics in ``stored_mean``/``stored_var`` (the reference's names) and
support ``momentum=None`` for BigGAN's "standing statistics": after ``reset_running_stats()`` the
stored statistics become the plain average over all training-mode batches seen since.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import ConfigError
from ganzoo.nets.sync_batchnorm import batch_norm


def _orthogonalize(x: Tensor, basis: list[Tensor]) -> Tensor:
    """Gram-Schmidt: remove from the row vector ``x`` (1, n) its components along each (1, n) in ``basis``."""
    for b in basis:
        x = x - (x @ b.t()) * b / (b @ b.t())
    return x


def power_iteration(
    weight_matrix: Tensor, us: list[Tensor], update: bool, eps: float
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """One power-iteration step for each of the ``len(us)`` leading singular triplets of ``weight_matrix``.

    Args:
        weight_matrix: (out, in).
        us: left singular vector estimates, each (1, out); the i-th is made orthogonal to the first i-1.
        update: write the new estimates into the tensors of ``us`` in place (training mode).
        eps: lower bound on the norm when normalizing, avoiding a division by zero.

    Returns ``(singular_values, new_us, new_vs)``: 0-d tensors that carry the gradient w.r.t.
    ``weight_matrix`` (the vectors are treated as constants, as in Miyato et al.), (1, out) and (1, in).
    """
    new_us: list[Tensor] = []
    new_vs: list[Tensor] = []
    svs: list[Tensor] = []
    for i, u in enumerate(us):
        with torch.no_grad():
            v = F.normalize(_orthogonalize(u @ weight_matrix, new_vs), eps=eps)
            new_vs.append(v)
            u = F.normalize(_orthogonalize(v @ weight_matrix.t(), new_us), eps=eps)
            new_us.append(u)
            if update:
                us[i].copy_(u)
        svs.append((v @ weight_matrix.t() @ u.t()).squeeze())
    return svs, new_us, new_vs


class SpectralNorm:
    """Mixin for a layer with a ``weight`` whose first dimension is its output size.

    Call :meth:`_setup_spectral_norm` after the torch layer's ``__init__``. Buffers ``u{i}`` (1, out) hold
    the singular-vector estimates and ``sv{i}`` (1,) the last training-mode singular values (logging only).
    """

    weight: Tensor
    training: bool
    register_buffer: Callable[..., None]

    def _setup_spectral_norm(self, num_svs: int, num_itrs: int, num_outputs: int, eps: float) -> None:
        if num_svs < 1 or num_itrs < 1:
            raise ConfigError(f"spectral norm needs num_svs >= 1 and num_itrs >= 1, got {num_svs}, {num_itrs}: use 1")
        self.num_svs, self.num_itrs, self.eps = num_svs, num_itrs, eps
        for i in range(num_svs):
            self.register_buffer(f"u{i}", torch.randn(1, num_outputs))
            self.register_buffer(f"sv{i}", torch.ones(1))

    @property
    def singular_vectors(self) -> list[Tensor]:
        """The stored left singular vectors ``u0..``, each (1, out)."""
        return [getattr(self, f"u{i}") for i in range(self.num_svs)]

    @property
    def singular_values(self) -> list[Tensor]:
        """The stored singular values ``sv0..`` (each (1,)), largest first, as of the last training step."""
        return [getattr(self, f"sv{i}") for i in range(self.num_svs)]

    def normalized_weight(self) -> Tensor:
        """``weight / sigma_0``, same shape and dtype as ``weight``; in training mode also updates ``u``/``sv``."""
        weight = self.weight
        with torch.autocast(device_type=weight.device.type, enabled=False):
            matrix = weight.float().reshape(weight.shape[0], -1)
            buffers = self.singular_vectors
            # .float() is the buffer itself when it is already float32, so update=True writes straight into it.
            us = [u.float() for u in buffers]
            # Without updates every step would start from the same stored u, so the reference's eval-mode
            # loop over num_itrs gives exactly what one step gives.
            steps = self.num_itrs if self.training else 1
            for _ in range(steps):
                svs, _, _ = power_iteration(matrix, us, update=self.training, eps=self.eps)
            if self.training:
                with torch.no_grad():
                    for buf, u, stored, sv in zip(buffers, us, self.singular_values, svs, strict=True):
                        if buf is not u:
                            buf.copy_(u)
                        stored.copy_(sv.detach())
            return (weight.float() / svs[0]).to(weight.dtype)


class SNConv2d(SpectralNorm, nn.Conv2d):
    """``nn.Conv2d`` with a spectrally normalized weight. Extra kwargs: ``num_svs``, ``num_itrs``, ``eps``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self._setup_spectral_norm(num_svs, num_itrs, out_channels, eps)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class SNLinear(SpectralNorm, nn.Linear):
    """``nn.Linear`` with a spectrally normalized weight. Extra kwargs: ``num_svs``, ``num_itrs``, ``eps``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._setup_spectral_norm(num_svs, num_itrs, out_features, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(SpectralNorm, nn.Embedding):
    """``nn.Embedding`` with a spectrally normalized (num_embeddings, dim) table; ``u`` has num_embeddings entries.

    Extra kwargs: ``num_svs``, ``num_itrs``, ``eps``. ``max_norm`` is refused: it renormalizes the stored
    table in place, which does not combine with a table computed on every call.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ) -> None:
        if max_norm is not None:
            raise ConfigError("SNEmbedding does not support max_norm: leave max_norm=None")
        nn.Embedding.__init__(
            self, num_embeddings, embedding_dim, padding_idx, None, norm_type, scale_grad_by_freq, sparse
        )
        self._setup_spectral_norm(num_svs, num_itrs, num_embeddings, eps)

    def forward(self, x: Tensor) -> Tensor:
        w = self.normalized_weight()
        return F.embedding(x, w, self.padding_idx, None, self.norm_type, self.scale_grad_by_freq, self.sparse)


class ClassEmbedding(nn.Embedding):
    """Class embedding that also takes soft class mixtures; ``weight`` is (num_classes, dim) as in ``nn.Embedding``.

    Input: int64 class ids (N,) -> (N, dim) by lookup, or float mixtures (N, num_classes) -> ``mixture @ weight``,
    so a one-hot row gives exactly that class's embedding and blending one-hots blends embeddings.
    """

    def forward(self, y: Tensor) -> Tensor:
        if not y.is_floating_point():
            return super().forward(y)
        if y.dim() != 2 or y.shape[1] != self.num_embeddings:
            raise ConfigError(
                f"class mixtures must be (N, {self.num_embeddings}), got {tuple(y.shape)}: pass one weight per class"
            )
        # Outside autocast so a one-hot row reproduces the lookup bit for bit, as the integer path does.
        with torch.autocast(device_type=y.device.type, enabled=False):
            return y.to(self.weight.dtype) @ self.weight


class StoredStatsBatchNorm(nn.Module):
    """Batch norm over (N, C, H, W) that keeps its statistics in ``stored_mean`` / ``stored_var`` (C,).

    Training mode normalizes with the batch statistics and folds them into the stored ones with
    ``momentum``; ``momentum=None`` makes the stored ones the cumulative average of all batches since
    :meth:`reset_running_stats` (the counter is a non-persistent buffer so the state dict keeps the
    reference's keys). Eval mode normalizes with the stored statistics. ``cross_replica`` (off; see
    :mod:`ganzoo.nets.sync_batchnorm`) takes training-mode statistics over every DDP process's batch.
    """

    cross_replica: bool = False

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.register_buffer("stored_mean", torch.zeros(num_features))
        self.register_buffer("stored_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long), persistent=False)

    def reset_running_stats(self) -> None:
        """Stored mean to 0, variance to 1, batch counter to 0."""
        self.stored_mean.zero_()
        self.stored_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def _normalize(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            # 1/n after n batches is the cumulative average; the first batch (n=1) overwrites the reset values.
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return batch_norm(
            x, self.stored_mean, self.stored_var, weight, bias, self.training, factor, self.eps, self.cross_replica
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm(StoredStatsBatchNorm):
    """Unconditional batch norm with a learned per-channel ``gain`` (ones) and ``bias`` (zeros).

    ``forward(x, y=None)``: (N, C, H, W) -> (N, C, H, W); ``y`` is ignored, so it can stand in for the
    class-conditional one inside a block.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(num_features, eps, momentum)
        self.gain = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor, y: object = None) -> Tensor:
        return self._normalize(x, self.gain, self.bias)


class ClassConditionalBatchNorm(StoredStatsBatchNorm):
    """Batch norm whose per-sample gain and bias are predicted from a conditioning input ``y``.

    ``gain`` and ``bias`` are ``which_linear(input_size, num_features)``: an ``SNLinear(bias=False)`` for a
    float conditioning vector (N, input_size), or a :class:`ClassEmbedding` for class ids / mixtures.
    ``forward(x (N, C, H, W), y) = norm(x) * (1 + gain(y)) + bias(y)``, so a zero gain layer means identity scale.
    """

    def __init__(
        self,
        num_features: int,
        input_size: int,
        which_linear: Callable[[int, int], nn.Module],
        eps: float = 1e-5,
        momentum: float | None = 0.1,
    ) -> None:
        super().__init__(num_features, eps, momentum)
        self.input_size = input_size
        self.gain = which_linear(input_size, num_features)
        self.bias = which_linear(input_size, num_features)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        gain = 1 + self.gain(y)
        bias = self.bias(y)
        return self._normalize(x) * gain[:, :, None, None] + bias[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, input_size={self.input_size}"


class SelfAttention(nn.Module):
    """SA-GAN non-local block: ``x + gamma * attention(x)`` with ``gamma`` starting at 0 (identity at init).

    Queries (``theta``, C/8 channels) attend over 2x2-max-pooled keys (``phi``, C/8) and values (``g``, C/2);
    ``o`` maps back to C. ``which_conv(in, out, kernel_size=1, padding=0, bias=False)`` builds the 1x1 convs.
    Input and output: (N, C, H, W) with H and W even; ``y`` is ignored (blocks pass it to every layer).
    """

    def __init__(self, channels: int, which_conv: Callable[..., nn.Module] = SNConv2d) -> None:
        super().__init__()
        if channels < 8:
            raise ConfigError(f"SelfAttention needs >= 8 channels, got {channels}: widen the net or drop attention")
        self.channels = channels

        def conv(cin: int, cout: int) -> nn.Module:
            return which_conv(cin, cout, kernel_size=1, padding=0, bias=False)

        self.theta = conv(channels, channels // 8)
        self.phi = conv(channels, channels // 8)
        self.g = conv(channels, channels // 2)
        self.o = conv(channels // 2, channels)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor, y: object = None) -> Tensor:
        n, c, height, width = x.shape
        if height % 2 or width % 2:
            raise ConfigError(
                f"SelfAttention needs even sides, got {height}x{width}: move attention to another resolution"
            )
        theta = self.theta(x).flatten(2)  # (N, C/8, HW)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # (N, C/2, HW/4)
        beta = F.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (N, HW, HW/4), rows sum to 1
        attended = (g @ beta.transpose(1, 2)).view(n, c // 2, height, width)
        return x + self.gamma * self.o(attended)
