"""Reading the reference implementations' weight files: plain state dicts, loaded weights-only."""

from __future__ import annotations

from pathlib import Path

import torch

from ganzoo.errors import CheckpointError

StateDict = dict[str, torch.Tensor]


def read_state_dict(source: str | Path | StateDict, what: str) -> tuple[StateDict, str]:
    """``(state dict, name for messages)`` from a ``.pth`` path or an already loaded state dict.

    Files are read with ``torch.load(weights_only=True)``; anything but a dict of tensors is refused with a
    :class:`CheckpointError` naming ``what`` the file should be (e.g. "netG_*.pth / netD_*.pth"). The
    ``module.`` prefix that ``nn.DataParallel`` puts on every key (the references' multi-GPU runs) is removed.
    """
    if isinstance(source, dict):
        state, name = source, "state dict"
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"weights file {path} does not exist: pass the path of {what}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"weights file {path} is not a plain PyTorch state dict ({type(e).__name__}): "
                f"pass {what} saved with torch.save(net.state_dict())"
            ) from None
        name = str(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name} is not a state dict of tensors: pass {what}")
    return {k.removeprefix("module."): v for k, v in state.items()}, name
