"""Checkpoint files: atomic writes, safe loads, where a run's checkpoints are and which one a run resumes from,
and rebuilding a model from a checkpoint alone."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pickle
import re
import socket
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ganzoo.errors import CheckpointError, GanzooError

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, fsyncs it, then renames it over the
    target, so a crash mid-save leaves the previous checkpoint intact. Loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        save_atomic(checkpoint, path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location=map_location or "cpu")


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` through a temporary sibling and an atomic rename.

    The temporary file is ``.<name>.<host>.<pid>.tmp``: a process killed mid-save (SIGKILL, OOM killer, power
    loss) leaves it behind and ``path`` untouched; the next save to ``path`` from this host removes such
    leftovers of processes that no longer exist.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f"{_temporary_prefix(path)}{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of earlier saves to ``path`` whose writer (a process on this host) has died."""
    prefix = _temporary_prefix(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix) : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            (path.parent / name).unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unwritable_reason(directory: str | Path) -> str | None:
    """Why files cannot be written into ``directory`` (created when missing), or None when they can.

    A real probe, not ``os.access`` (which a read-only file system, ACLs or root's privileges make misleading):
    in ``directory``, or when it does not exist yet in its nearest existing ancestor, a temporary folder and a
    file in it are created and removed again. Nothing is left behind, and a missing ``directory`` is not
    created, so a run directory whose name holds the time is not made twice.
    """
    path = Path(os.path.abspath(directory))
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "a file" if existing.exists() else "a broken link"
        return f"{existing} is {what}, not a folder"
    try:
        probe = Path(tempfile.mkdtemp(prefix=".ganzoo-write-probe-", dir=existing))
        try:
            fd, name = tempfile.mkstemp(dir=probe)
            os.close(fd)
            os.unlink(name)
        finally:
            probe.rmdir()
    except OSError as e:
        return f"{existing} is not writable ({e.strerror or type(e).__name__})"
    return None


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: pass the path of a .ckpt file, e.g. <run dir>/checkpoints/last.ckpt"
        )
    if not zipfile.is_zipfile(path):
        # torch.save has written zip archives since PyTorch 1.6; anything else is truncated or foreign.
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch file: use another checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" such as {found.group(1)}" if found else ""
        raise CheckpointError(
            f"checkpoint {path} holds Python objects{what}, not only tensors and plain containers; "
            "ganzoo loads checkpoints with weights_only=True for safety: re-save it with plain state dicts"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a PyTorch file ({type(e).__name__}): use another checkpoint"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} is a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint


def checkpoint_step(path: str | Path) -> int:
    """The ``global_step`` a checkpoint was saved at, read memory-mapped (its tensors are not loaded)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__})") from None
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    if not isinstance(step, int):
        raise CheckpointError(f"checkpoint {path} records no global_step: it was not written by Lightning")
    return step


def newest_checkpoint(directories: Iterable[str | Path]) -> tuple[Path, int] | None:
    """The most advanced training state among the ``*.ckpt`` files in ``directories``: ``(path, global_step)``.

    Ordered by the saved ``global_step``, then ``last*.ckpt`` before other names (at a run's end ``last.ckpt``
    also closes the epoch), then the newest modification time. Files that cannot be read (truncated, foreign)
    are skipped with a warning; if every checkpoint there is unreadable that is an error, not a fresh start.
    Returns None when the folders hold no checkpoint at all.
    """
    found: list[tuple[int, bool, int, str]] = []
    unreadable: list[str] = []
    seen: set[str] = set()
    for directory in directories:
        directory = os.path.realpath(directory)
        if directory in seen or not os.path.isdir(directory):
            continue
        seen.add(directory)
        for name in sorted(os.listdir(directory)):
            candidate = os.path.join(directory, name)
            if not name.endswith(".ckpt") or name.startswith(".") or not os.path.isfile(candidate):
                continue
            try:
                step, mtime = checkpoint_step(candidate), os.stat(candidate).st_mtime_ns
            except FileNotFoundError:
                continue  # removed meanwhile (a checkpoint callback keeping the top k)
            except CheckpointError as e:
                log.warning("skipping %s", e)
                unreadable.append(candidate)
                continue
            found.append((step, name.startswith("last"), mtime, candidate))
    if found:
        step, _, _, best = max(found)
        return Path(best), step
    if unreadable:
        raise CheckpointError(
            f"no readable checkpoint among {', '.join(unreadable)}: pass ckpt_path=<a good .ckpt file>, "
            "or move these files away to start from scratch"
        )
    return None


def checkpoint_model_class(checkpoint: dict[str, Any], path: str | Path) -> str:
    """The ``module.Class`` of the LightningModule that wrote ``checkpoint``."""
    meta = checkpoint.get("ganzoo")
    if not isinstance(meta, dict) or "model_class" not in meta:
        raise CheckpointError(
            f"checkpoint {path} was not written by ganzoo training (no 'ganzoo' metadata): pass a checkpoint from `python -m ganzoo.train`"
        )
    return meta["model_class"]


def ensure_model_class(checkpoint: dict[str, Any], expected: str, source: str | Path) -> None:
    """Fail with a clear message when ``checkpoint`` (read from ``source``) belongs to a model other than ``expected``."""
    found = checkpoint_model_class(checkpoint, source)
    if found != expected:
        raise CheckpointError(
            f"checkpoint {source} is a {found.rsplit('.', 1)[-1]} checkpoint but the configured model is "
            f"{expected.rsplit('.', 1)[-1]}: pick the matching model= option or another checkpoint"
        )


#: Packages whose nn.Module classes a checkpoint's model config may name.
_BUILDABLE_PACKAGES = ("ganzoo.models.", "ganzoo.nets.")


def _targets(config: Any) -> list[str]:
    """Every ``_target_`` in a nested config of dicts and lists."""
    if isinstance(config, dict):
        found = [config["_target_"]] if "_target_" in config else []
        return found + [t for value in config.values() for t in _targets(value)]
    if isinstance(config, list):
        return [t for value in config for t in _targets(value)]
    return []


def _buildable_class(target: Any, source: str | Path) -> type:
    """The class ``target`` names, if it is a ganzoo network or model; a CheckpointError otherwise.

    ``weights_only=True`` keeps code out of the unpickling, but instantiating a config would call whatever
    it names: a checkpoint from elsewhere may only build ganzoo's own modules.
    """
    refused = CheckpointError(
        f"checkpoint {source} asks to build {target!r}, which is not a ganzoo model or network: "
        "ganzoo only rebuilds its own classes from a checkpoint"
    )
    if not isinstance(target, str) or not target.startswith(_BUILDABLE_PACKAGES):
        raise refused
    module_name, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise refused from None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise refused
    return cls


#: Classes that moved, by the ``_target_`` older checkpoints' run configs name them with: their current one.
MOVED_TARGETS = {
    "ganzoo.data.unpaired.FashionMNISTDomainsDataModule": "ganzoo.data.fmnist_domains.FashionMNISTDomainsDataModule",
}


def with_current_targets(config: Any) -> Any:
    """``config`` (nested dicts and lists) with every ``_target_`` of a moved class renamed to where it lives now."""
    if isinstance(config, dict):
        renamed = {key: with_current_targets(value) for key, value in config.items()}
        target = renamed.get("_target_")
        if isinstance(target, str) and target in MOVED_TARGETS:
            renamed["_target_"] = MOVED_TARGETS[target]
        return renamed
    if isinstance(config, list):
        return [with_current_targets(value) for value in config]
    return config


def load_model(path: str | Path, map_location: Any = "cpu") -> Any:
    """Rebuild the GAN LightningModule saved in a ganzoo checkpoint, weights loaded, in eval mode.

    The model also gets ``run_config`` (the run's resolved config, if recorded, with the ``_target_``s of
    classes that moved since brought up to date) and ``checkpoint_step``.

    Needs no config files: the checkpoint carries the resolved model config. Only ganzoo's own model and
    network classes are ever built from it.
    """
    from hydra.utils import instantiate

    checkpoint = load_checkpoint_file(path, map_location=map_location)
    cls = _buildable_class(checkpoint_model_class(checkpoint, path), path)
    config = checkpoint["ganzoo"].get("model_config")
    if not isinstance(config, dict) or not config:
        raise CheckpointError(f"checkpoint {path} has no model config: it was saved outside `python -m ganzoo.train`")
    for target in _targets(config):
        _buildable_class(target, path)
    model = instantiate(config, _convert_="all")
    if not isinstance(model, cls):
        raise CheckpointError(f"checkpoint {path}: its model config builds {type(model).__name__}, not {cls.__name__}")
    model.load_state_dict(checkpoint["state_dict"])
    model.model_config = config
    model.run_config = with_current_targets(checkpoint["ganzoo"].get("run_config"))
    model.checkpoint_step = int(checkpoint.get("global_step", 0))
    return model.eval()


# ------------------------------------------------------------------ where a run's checkpoints are, resuming
#: How rank 0 tells the DDP processes it starts (which rerun the command line) which checkpoint it resolved.
RESUME_ENV = "GANZOO_RESUME"


def _log_on_rank_zero(message: str, *args: Any) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        log.info(message, *args)


def config_checkpoint_dirs(cfg: Any) -> list[str]:
    """The folders the checkpoint callbacks of a run config (``python -m ganzoo.train``'s) write to, before any
    trainer exists: each ``ModelCheckpoint`` entry's ``dirpath``, then ``<run dir>/checkpoints``."""
    from hydra.utils import get_class
    from lightning.pytorch.callbacks import ModelCheckpoint

    dirs = []
    for entry in (cfg.get("callbacks") or {}).values():
        if entry is None or "_target_" not in entry or not entry.get("dirpath"):
            continue
        try:
            cls = get_class(entry._target_)
        except Exception:  # not a class (a factory function): not a checkpoint callback of ours
            continue
        if isinstance(cls, type) and issubclass(cls, ModelCheckpoint):
            dirs.append(str(entry.dirpath))
    return [*dirs, os.path.join(cfg.paths.output_dir, "checkpoints")]


def resolve_resume(cfg: Any) -> tuple[str | None, bool]:
    """The checkpoint file to resume from (None: from scratch), and whether ``ckpt_path=last`` found the run complete.

    ``ckpt_path`` is a file, a run directory (its ``checkpoints/``, or a folder of checkpoints) or ``last``: the
    run's own checkpoint folder, so that one command serves the first launch and every requeue. For a folder
    the newest state counts: the highest saved step (see :func:`ganzoo.checkpoint.newest_checkpoint`).
    Lightning's own ``ckpt_path="last"`` (the newest ``last*.ckpt`` by modification time, a fresh start
    when there is none) never sees the word: it gets the resolved file.
    """
    spec = cfg.get("ckpt_path")
    if spec is None or str(spec) == "":
        return None, False
    spec = str(spec)
    if spec != "last" and not os.path.isdir(spec):
        with contextlib.suppress(GanzooError):  # if unreadable, loading it reports that in its own words
            _log_on_rank_zero("resuming from %s (step %d)", spec, checkpoint_step(spec))
        return spec, False

    output_dir = os.path.realpath(cfg.paths.output_dir)
    if spec == "last":
        dirs = config_checkpoint_dirs(cfg)
    else:
        dirs = [os.path.join(spec, "checkpoints") if os.path.isdir(os.path.join(spec, "checkpoints")) else spec]
    inherited = json.loads(os.environ.get(RESUME_ENV, "null"))
    if isinstance(inherited, dict) and inherited.get("output_dir") == output_dir and inherited.get("spec") == spec:
        # A DDP process started by rank 0: take rank 0's choice, whatever has been written since.
        path, step = inherited["path"], inherited["step"]
    else:
        found = newest_checkpoint(dirs)
        path, step = (str(found[0]), found[1]) if found else (None, None)
        os.environ[RESUME_ENV] = json.dumps({"output_dir": output_dir, "spec": spec, "path": path, "step": step})

    if path is None:
        if spec != "last":
            raise CheckpointError(
                f"ckpt_path={spec} holds no checkpoint (*.ckpt): pass a run directory or a .ckpt file"
            )
        _log_on_rank_zero(
            "ckpt_path=last: no checkpoint in %s yet, starting from scratch (to resume an earlier run, pass its "
            "directory: hydra.run.dir=<run dir> ckpt_path=last)",
            " or ".join(dict.fromkeys(dirs)),
        )
        return None, False
    max_steps = cfg.trainer.get("max_steps") or -1
    if spec == "last" and 0 < max_steps <= step:
        _log_on_rank_zero(
            "ckpt_path=last: %s is at step %d and trainer.max_steps=%d: the run is complete, nothing to train "
            "(raise trainer.max_steps to train further)",
            path,
            step,
            max_steps,
        )
        os.environ.pop(RESUME_ENV, None)
        return None, True
    _log_on_rank_zero("ckpt_path=%s: resuming from %s (step %d)", spec, path, step)
    return path, False


def checkpoint_dirs(trainer: Any) -> list[Path]:
    """Where a running trainer writes checkpoints: the folders of its checkpoint callbacks (``<run dir>/checkpoints``)."""
    dirs = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
    return dirs or [Path(trainer.default_root_dir) / "checkpoints"]


def newest_saved(trainer: Any) -> tuple[Path, int] | None:
    """A running trainer's newest checkpoint on disk and its step, or None when it has none that can be read."""
    try:
        return newest_checkpoint(checkpoint_dirs(trainer))
    except GanzooError:
        return None
