"""ajbrock/BigGAN-PyTorch weights (``G.pth``, ``G_ema.pth``, ``D.pth``, also ``_best<i>``) in ganzoo's BigGAN nets.

ganzoo's :mod:`ganzoo.nets.biggan` uses the reference's module names, so the keys match; files saved with
``--mybn`` (statistics under ``.bn.``, standing-stat sums with an ``accumulation_counter``) are mapped onto
them. The architecture is read off the tensors: the resolution from the number of blocks, ``ch`` from the
first block's width, the image channels from the first/last conv, the classes from the embeddings, ``shared``
from ``shared.weight``, ``hier`` and ``dim_z`` from how much wider the conditional-BN inputs are than the
shared embedding, attention from which blocks have a ``.1.gamma``, ``num_svs`` from the ``u<i>`` buffers,
D's ``wide`` from its first convs. What the tensors do not hold (``SN_eps``, ``BN_eps``, the power-iteration
steps) comes from the run's ``state_dict.pth`` next to the file (a visible warning when it is there but cannot
be used, and the defaults then); keyword overrides win over both. Every file is read with
``torch.load(weights_only=True)``; for ``state_dict.pth`` with an allow-list of exactly the classes it holds.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo.errors import CheckpointError, ConfigError
from ganzoo.nets.biggan import BigGANDiscriminator, BigGANGenerator, discriminator_arch, generator_arch
from ganzoo.weights.state_dict import StateDict, read_state_dict

log = logging.getLogger(__name__)

G_FILE = "a BigGAN-PyTorch G.pth / G_ema.pth"
D_FILE = "a BigGAN-PyTorch D.pth"
_G_RESOLUTION = {3: 32, 4: 64, 5: 128, 6: 256}  # blocks -> px
_D_RESOLUTION = {4: 32, 5: 64, 6: 128, 7: 256}
# BigGAN-PyTorch config names of the values no tensor holds, per ganzoo argument.
_G_CONFIG = {"sn_eps": "SN_eps", "bn_eps": "BN_eps", "num_sv_itrs": "num_G_SV_itrs"}
_D_CONFIG = {"sn_eps": "SN_eps", "num_sv_itrs": "num_D_SV_itrs"}
_BLOCK = re.compile(r"blocks\.(\d+)\.0\.conv1\.weight")
_MYBN = re.compile(r"(.+)\.bn\.(stored_mean|stored_var|accumulation_counter)")


def generator_from_official(source: str | Path | StateDict, **overrides: Any) -> BigGANGenerator:
    """A :class:`BigGANGenerator` in eval mode holding a BigGAN-PyTorch ``G.pth`` / ``G_ema.pth`` (path or state dict).

    ``overrides`` (any of :class:`BigGANGenerator`'s arguments) win over what is read off the weights and the
    run's config. Its ``forward(z, y)`` takes class ids where the reference takes ``G.shared(y)``.
    """
    state, name = read_state_dict(source, G_FILE)
    state = _from_mybn(state)
    if "output_layer.2.weight" not in state:
        hint = " (it looks like a D.pth: use discriminator_from_official)" if "embed.weight" in state else ""
        raise CheckpointError(f"{name} has no output_layer.2.weight: pass {G_FILE}{hint}")
    n_blocks = _count_blocks(state, name, G_FILE)
    _require(state, ["linear.weight", "blocks.0.0.bn1.gain.weight"], name, G_FILE)
    resolution = _G_RESOLUTION.get(n_blocks)
    first_in = state["blocks.0.0.conv1.weight"].shape[1]
    widths = {state[f"blocks.{i}.0.conv1.weight"].shape[0] for i in range(n_blocks)} | {first_in}
    # The 32 px G is the only 3-block one, and it keeps one width (4 * ch) throughout.
    if resolution is None or (resolution == 32 and len(widths) > 1):
        raise CheckpointError(f"{name} has {n_blocks} generator blocks of widths {sorted(widths)}: pass {G_FILE}")
    ch, rest = divmod(first_in, generator_arch(resolution, ch=1)[0].in_channels)
    bottom_width = math.isqrt(state["linear.weight"].shape[0] // first_in)
    if rest or ch == 0 or bottom_width**2 * first_in != state["linear.weight"].shape[0]:
        raise CheckpointError(f"{name}: its linear and first block widths fit no BigGAN-PyTorch G: pass {G_FILE}")
    cond = state["blocks.0.0.bn1.gain.weight"]
    params: dict[str, Any] = {"resolution": resolution, "ch": ch, "channels": state["output_layer.2.weight"].shape[0]}
    if "shared.weight" in state:
        n_classes, shared_dim = state["shared.weight"].shape
        # Under hier every conditional BN sees [shared embedding, one z chunk].
        chunk = cond.shape[1] - shared_dim
        hier = chunk > 0
        dim_z = chunk * (n_blocks + 1) if hier else state["linear.weight"].shape[1]
        params.update(shared=True, shared_dim=shared_dim, hier=hier, dim_z=dim_z, n_classes=n_classes)
    else:
        # Unshared: each conditional BN holds its own (n_classes, C) embedding tables.
        params.update(shared=False, hier=False, dim_z=state["linear.weight"].shape[1], n_classes=cond.shape[0])
    params["bottom_width"] = bottom_width
    specs = generator_arch(resolution, ch, attention="0")
    params["attention"] = _attention(state, [s.resolution for s in specs])
    params["num_svs"] = _num_svs(state)
    # Only what the caller did not pass is looked up (and warned about).
    params.update(_run_config(source, {k: v for k, v in _G_CONFIG.items() if k not in overrides}))
    params.update(overrides)
    return _load(BigGANGenerator, params, state, name, G_FILE)


def discriminator_from_official(source: str | Path | StateDict, **overrides: Any) -> BigGANDiscriminator:
    """A :class:`BigGANDiscriminator` in eval mode holding a BigGAN-PyTorch ``D.pth`` (path or state dict).

    ``overrides`` (any of :class:`BigGANDiscriminator`'s arguments) win over what is read off the weights and
    the run's config. It returns (N,) logits where the reference returns (N, 1).
    """
    state, name = read_state_dict(source, D_FILE)
    if "embed.weight" not in state:
        hint = " (it looks like a G.pth: use generator_from_official)" if "output_layer.2.weight" in state else ""
        raise CheckpointError(f"{name} has no embed.weight: pass {D_FILE}{hint}")
    n_blocks = _count_blocks(state, name, D_FILE)
    _require(state, ["linear.weight", "blocks.0.0.conv2.weight"], name, D_FILE)
    resolution = _D_RESOLUTION.get(n_blocks)
    if resolution is None:
        raise CheckpointError(f"{name} has {n_blocks} discriminator blocks, not 4 to 7 (32 to 256 px): pass {D_FILE}")
    conv1 = [state[f"blocks.{i}.0.conv1.weight"].shape for i in range(n_blocks)]
    conv2 = [state[f"blocks.{i}.0.conv2.weight"].shape for i in range(n_blocks)]
    ch = conv2[0][0] // discriminator_arch(resolution, ch=1)[0].out_channels
    specs = discriminator_arch(resolution, ch, attention="0")
    params: dict[str, Any] = {
        "resolution": resolution,
        "channels": conv1[0][1],
        "ch": ch,
        "n_classes": state["embed.weight"].shape[0],
        # A wide block's first conv already has the output width; a skinny one keeps the input width.
        "wide": all(a[0] == b[0] for a, b in zip(conv1, conv2, strict=True)),
        "attention": _attention(state, [s.resolution for s in specs]),
        "num_svs": _num_svs(state),
        "output_dim": state["linear.weight"].shape[0],
    }
    params.update(_run_config(source, {k: v for k, v in _D_CONFIG.items() if k not in overrides}))
    params.update(overrides)
    return _load(BigGANDiscriminator, params, state, name, D_FILE)


def _count_blocks(state: StateDict, name: str, what: str) -> int:
    """Number of residual blocks ``blocks.<i>.0``; they must be numbered 0..n-1."""
    indices = sorted(int(m.group(1)) for k in state if (m := _BLOCK.fullmatch(k)))
    if not indices or indices != list(range(len(indices))):
        raise CheckpointError(f"{name} has no blocks.<i>.0.conv1.weight numbered from 0: pass {what}")
    return len(indices)


def _require(state: StateDict, keys: list[str], name: str, what: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{name} has no {', '.join(missing)}: pass {what}")


def _attention(state: StateDict, block_resolutions: list[int]) -> str:
    """The reference's attention string ("64", "32_64", "0") from the blocks followed by attention (``.1.gamma``)."""
    found = {r for i, r in enumerate(block_resolutions) if f"blocks.{i}.1.gamma" in state}
    return "_".join(str(r) for r in sorted(found)) or "0"


def _num_svs(state: StateDict) -> int:
    """Singular values tracked per SN layer: the ``linear.u<i>`` buffers (every SN layer has as many)."""
    return sum(1 for k in state if re.fullmatch(r"linear\.u\d+", k)) or 1


def _from_mybn(state: StateDict) -> StateDict:
    """Move ``--mybn`` statistics (``<bn>.bn.stored_*``) to ``<bn>.stored_*``, dividing standing-stat sums.

    myBN accumulates standing statistics as sums over ``accumulation_counter`` batches and divides in eval;
    a zero counter means running averages, which are used as they are.
    """
    groups: dict[str, dict[str, torch.Tensor]] = {}
    out: StateDict = {}
    for key, value in state.items():
        m = _MYBN.fullmatch(key)
        if m:
            groups.setdefault(m.group(1), {})[m.group(2)] = value
        else:
            out[key] = value
    for prefix, stats in groups.items():
        count = stats.pop("accumulation_counter", torch.zeros(1))
        scale = 1 / count.item() if count.numel() == 1 and count.item() > 0 else 1.0
        for leaf, value in stats.items():
            out[f"{prefix}.{leaf}"] = value * scale
    return out


def _numpy_scalar_globals() -> list[Any]:
    """What a weights-only load needs for the numpy scalars (best IS/FID) BigGAN-PyTorch keeps in state_dict.pth."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtypes = getattr(np, "dtypes", None)
    dtype_classes = [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType") if hasattr(dtypes, n)]
    # Files pickled under numpy 1 name the scalar constructor numpy.core.multiarray.scalar.
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtype_classes]


def _companion_globals() -> list[Any]:
    """Exactly the classes a BigGAN-PyTorch ``state_dict.pth`` holds beyond plain containers, for a weights-only load.

    Its train.py stores the whole argparse ``config``, into which it has put ``G_activation`` / ``D_activation``:
    ``nn.ReLU`` modules from ``utils.activation_dict`` (``inplace`` True or False). Modules pickled by PyTorch
    <= 1.1 also carry a ``_backend`` attribute that unpickles through ``torch.nn.backends.thnn`` (a function kept
    by PyTorch for exactly this, returning None). Besides those: the numpy scalars of ``best_IS`` / ``best_FID``.
    An ``nn.ReLU`` holds no code of its own; nothing else from such a file is ever built.
    """
    from torch.nn.backends.thnn import _get_thnn_function_backend

    return [*_numpy_scalar_globals(), nn.ReLU, _get_thnn_function_backend]


def _companion_unusable(path: Path, reason: str, names: dict[str, str]) -> dict[str, Any]:
    """Warn that the run config ``path`` is present but unused (which values fall back to defaults); returns {}."""
    keys = ", ".join(f"{ours}= (its {theirs})" for ours, theirs in names.items())
    warnings.warn(
        f"ignoring {path}: {reason}; the values only that file records take ganzoo's defaults, which may differ "
        f"from the trained ones: pass them as keyword arguments ({keys})",
        UserWarning,
        stacklevel=4,
    )
    return {}


def _run_config(source: str | Path | StateDict, names: dict[str, str]) -> dict[str, Any]:
    """ganzoo arguments from the ``config`` of the ``state_dict[_suffix].pth`` saved beside ``source``, or {}.

    A companion file that is present but cannot be used (unreadable, no ``config``, none of the values) is
    reported with a :class:`UserWarning`: the import then runs on defaults, which changes the outputs when the
    run was trained with other epsilons.
    """
    if isinstance(source, dict) or not names:
        return {}
    path = Path(source)
    m = re.fullmatch(r"(?:G_ema|G|D)(_.+)?", path.stem)
    candidates = [f"state_dict{m.group(1)}.pth"] if m and m.group(1) else []
    found = [path.with_name(c) for c in [*candidates, "state_dict.pth"] if path.with_name(c).is_file()]
    if not found:
        return {}
    companion = found[0]
    try:
        with torch.serialization.safe_globals(_companion_globals()):
            saved = torch.load(companion, map_location="cpu", weights_only=True)
    except Exception as e:
        detail = str(e).strip().splitlines()
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        reason = (
            f"it holds a {unsupported.group(1)} object, which ganzoo does not load"
            if unsupported
            else f"it cannot be read ({type(e).__name__}: {detail[0][:120] if detail else 'no detail'})"
        )
        return _companion_unusable(companion, reason, names)
    config = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(config, dict):
        return _companion_unusable(companion, "it holds no 'config' dictionary", names)
    params: dict[str, Any] = {}
    for ours, theirs in names.items():
        value = config.get(theirs)
        if isinstance(value, int | float) and not isinstance(value, bool):
            params[ours] = int(value) if ours == "num_sv_itrs" else float(value)
    if not params:
        return _companion_unusable(companion, f"its config records none of {', '.join(names.values())}", names)
    log.debug("%s gives %s", companion, params)
    return params


def _load(cls: type[nn.Module], params: dict[str, Any], state: StateDict, name: str, what: str) -> Any:
    """``cls(**params)`` with ``state`` loaded strictly, in eval mode; a mismatch is one CheckpointError line."""
    # Every weight is overwritten by the strict load, so skip the costly orthogonal init (QR per layer).
    params = {"init": "N02", **params}
    try:
        net = cls(**params)
    except ConfigError as e:
        raise CheckpointError(f"{name}: the {cls.__name__} read off it cannot be built ({e}): pass {what}") from None
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label}: {', '.join(keys[:3])}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("size mismatch", resized))
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{name} does not fit the {cls.__name__} read off its tensors ({'; '.join(problems)}): pass {what}"
        )
    net.load_state_dict(state)
    return net.eval()
