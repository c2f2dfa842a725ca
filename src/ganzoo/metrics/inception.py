"""The standard FID/IS/KID network: torchmetrics' InceptionV3 (the TF-ported weights papers use), offline-safe.

torchmetrics would download the weights on first use, which on a machine without network either fails with
a long traceback or stalls. Here the weights file is found first (an explicit path, then torch.hub's cache),
downloaded only with a bounded timeout, and otherwise reported in one line that says where to put it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import torch

from ganzoo.errors import ConfigError

#: The weights torch-fidelity and torchmetrics use: TF's 2015-12-05 Inception, converted to PyTorch.
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILENAME = INCEPTION_URL.rsplit("/", 1)[-1]


def missing_weights_message(reason: str, target: Path, labelled: bool | None = None, training: bool = True) -> str:
    """One line naming every way on when the Inception weights cannot be had.

    ``labelled``: whether the run's data has labels, so that the offline classifier evaluator can stand in
    (None: unknown, offered for labelled data). ``training``: whether skipping evaluation (``'~metrics'``) is
    a choice, as it is for ``ganzoo.train`` but not for ``ganzoo.evaluate``.
    """
    choices = [
        f"download {INCEPTION_URL} on a machine with network and put it at {target}",
        "set metrics.evaluation.extractor.weights_path=<file>",
    ]
    if labelled is None:
        choices.append("for labelled data use metrics=classifier (an offline domain FID)")
    elif labelled:
        choices.append("use metrics=classifier (an offline domain FID)")
    if training:
        choices.append("train without evaluation: '~metrics'")
    return f"Inception weights for FID/IS/KID are missing ({reason}): {', or '.join(choices)}"


class InceptionWeightsError(ConfigError):
    """The Inception weights are neither on disk nor downloadable.

    Carries ``reason`` and ``target`` so that an entry point that knows the data can name only the choices
    that work for it (:meth:`for_run`).
    """

    def __init__(self, message: str = "", *, reason: str = "", target: Path | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.target = target

    def for_run(self, labelled: bool, training: bool) -> InceptionWeightsError:
        """The same error, its remedies narrowed to a run on labelled or unlabelled data (see
        :func:`missing_weights_message`); unchanged when it does not come from a missing file."""
        if self.target is None:
            return self
        message = missing_weights_message(self.reason, self.target, labelled=labelled, training=training)
        return InceptionWeightsError(message, reason=self.reason, target=self.target)


def default_weights_path() -> Path:
    """Where torch.hub (and so torchmetrics) keeps the downloaded file: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME


def _missing(reason: str, target: Path) -> InceptionWeightsError:
    return InceptionWeightsError(missing_weights_message(reason, target), reason=reason, target=target)


def resolve_weights(weights_path: str | None = None, download: bool = True, timeout: float = 10.0) -> Path:
    """The Inception weights file: ``weights_path`` if given, else torch.hub's cached copy, else a download.

    The download waits at most ``timeout`` seconds per socket operation. Raises
    :class:`InceptionWeightsError` (one line naming the remedy) when no file can be had.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise _missing(f"{path} does not exist", path)
        return path
    path = default_weights_path()
    if path.is_file():
        return path
    if not download:
        raise _missing("downloads are switched off", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(path), hash_prefix="6726825d", progress=False)
    except Exception as e:  # URLError, timeout, a bad hash, ...
        raise _missing(f"the download failed: {type(e).__name__}", path) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def file_digest(path: Path) -> str:
    """The first 8 hex digits of the file's sha256, naming the weights in cache keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:8]


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


def build_inception(path: Path) -> torch.nn.Module:
    """torchmetrics' ``NoTrainInceptionV3`` with the 2048-d pool features and the unbiased logits (for IS).

    Its forward takes uint8 (N, 3, H, W) in [0, 255], resizes to 299 inside, and returns
    ``(pool (N, 2048), logits (N, 1008))`` from a single pass.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    class PoolAndLogits(NoTrainInceptionV3):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # torchmetrics' own forward returns only the first feature; both come from the same pass.
            return self._torch_fidelity_forward(x)

    try:
        with _weights_only_loads():
            return PoolAndLogits("inception-v3-compat", ["2048", "logits_unbiased"], str(path))
    except ModuleNotFoundError as e:
        raise ConfigError(f"Inception metrics need torch-fidelity ({e}): pip install torch-fidelity") from None
    except Exception as e:
        raise InceptionWeightsError(
            f"{path} is not the Inception weights file ({type(e).__name__}): download {INCEPTION_URL} again"
        ) from None
