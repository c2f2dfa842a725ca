"""Every private library internal in ganzoo.compat, exercised on the real library object.

Each test fails naming the compat function (or the hook a ganzoo subclass overrides) when an upgrade of
Lightning, its Hydra launcher or torchmetrics changes the internal it relies on.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ganzoo import compat
from ganzoo.loggers import CSVLogger


class _LoggingModel(BoringModel):
    """Lightning's demo model on 8 random items, logging its loss as ``train/loss`` each step."""

    def __init__(self, batch_size: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.logged: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.step(batch)
        self.log("train/loss", loss)
        self.logged.append(loss.detach())
        return {"loss": loss}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 8), batch_size=self.hparams.batch_size)


class _Hook(Callback):
    """Runs ``at[hook](trainer, *args)`` at the named Lightning hooks."""

    def __init__(self, **at: Any) -> None:
        self.at = at

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if "setup" in self.at:
            self.at["setup"](trainer)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "on_train_start" in self.at:
            self.at["on_train_start"](trainer)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if "on_train_batch_start" in self.at:
            self.at["on_train_batch_start"](trainer, batch_idx)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if "on_train_batch_end" in self.at:
            self.at["on_train_batch_end"](trainer)


def _trainer(tmp_path: Path, max_steps: int = 3, **kwargs: Any) -> Trainer:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "limit_val_batches": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
    }
    options.update(kwargs)
    return Trainer(**options)


# ------------------------------------------------------------------------------------------- training loop


def test_batches_stepped_counts_the_batches_before_the_current_one(tmp_path: Path) -> None:
    seen: list[int] = []
    trainer = _trainer(
        tmp_path, callbacks=[_Hook(on_train_batch_start=lambda t, i: seen.append(compat.batches_stepped(t)))]
    )
    trainer.fit(_LoggingModel())
    assert hasattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped"), (
        "compat.batches_stepped: Lightning's epoch loop has no _batches_that_stepped (falls back to global_step)"
    )
    assert seen == [0, 1, 2]


def test_current_batch_index_is_the_hooks_batch_idx(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    hook = _Hook(on_train_batch_start=lambda t, i: seen.append((compat.current_batch_index(t), i)))
    # Two batches per epoch: the index starts over in the second epoch.
    _trainer(tmp_path, callbacks=[hook], limit_train_batches=2).fit(_LoggingModel())
    assert [ours for ours, _ in seen] == [hooks for _, hooks in seen] == [0, 1, 0], (
        "compat.current_batch_index: fit_loop.epoch_loop.batch_idx no longer is the hooks' batch_idx"
    )


def test_step_logged_tensors_reads_the_steps_values_from_the_result_collection(tmp_path: Path) -> None:
    found: list[dict[str, torch.Tensor]] = []
    readable: list[bool] = []

    def read(trainer: Trainer) -> None:
        results = getattr(trainer, "_results", None)
        readable.append(
            results is not None
            and all(hasattr(m, "_forward_cache") and hasattr(m, "meta") for _, m in results.valid_items())
        )
        found.append(compat.step_logged_tensors(trainer))

    model = _LoggingModel()
    _trainer(tmp_path, callbacks=[_Hook(on_train_batch_end=read)]).fit(model)
    assert readable and all(readable), (
        "compat.step_logged_tensors: trainer._results (valid_items, _forward_cache, meta) is gone; "
        "it falls back to callback_metrics"
    )
    assert [set(values) for values in found] == [{"train/loss"}] * 3
    for values, logged in zip(found, model.logged, strict=True):
        assert torch.equal(values["train/loss"], logged)


def test_disable_sigterm_broadcast_replaces_the_loops_broadcast(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    loop = trainer.fit_loop.epoch_loop
    assert hasattr(loop, "_broadcast_sigterm_tensor"), (
        "compat.disable_sigterm_broadcast: Lightning's epoch loop has no _broadcast_sigterm_tensor; "
        "PreemptionCheckpoint no longer stops its per-iteration device sync under DDP"
    )
    compat.disable_sigterm_broadcast(trainer)
    assert loop._broadcast_sigterm_tensor() is None
    assert "_broadcast_sigterm_tensor" in vars(loop)  # on this loop only, not on the class


# ------------------------------------------------------------------------------------------ signal handlers


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def test_call_after_signal_registration_runs_after_lightnings_handlers(tmp_path: Path, sigterm_restored: None) -> None:
    handlers: list[Any] = []
    hooked: list[bool] = []

    def hook(trainer: Trainer) -> None:
        if not hooked:  # the first fit only
            action = lambda: handlers.append(signal.getsignal(signal.SIGTERM))  # noqa: E731
            hooked.append(compat.call_after_signal_registration(trainer, action))

    trainer = _trainer(tmp_path, callbacks=[_Hook(setup=hook)])
    before = signal.getsignal(signal.SIGTERM)
    trainer.fit(_LoggingModel())
    assert hooked == [True], "compat.call_after_signal_registration: trainer._signal_connector is gone"
    assert len(handlers) == 1, (
        "compat.call_after_signal_registration: Lightning's fit no longer calls "
        "_signal_connector.register_signal_handlers"
    )
    assert handlers[0] is not before  # called after Lightning put its own SIGTERM handler in place

    compat.stop_calling_after_signal_registration(trainer)
    trainer.fit(_LoggingModel())  # registers Lightning's handlers again (and trains no further)
    assert len(handlers) == 1


def test_signal_handlers_restored_at_teardown_is_what_lightning_restores(
    tmp_path: Path, sigterm_restored: None
) -> None:
    def replacement(signum: int, frame: Any) -> None:
        pass

    seen: list[Any] = []

    def correct(trainer: Trainer) -> None:
        handlers = compat.signal_handlers_restored_at_teardown(trainer)
        seen.append(handlers)
        if handlers is not None:
            handlers[signal.SIGTERM] = replacement

    _trainer(tmp_path, callbacks=[_Hook(on_train_start=correct)]).fit(_LoggingModel())
    assert isinstance(seen[0], dict) and signal.SIGTERM in seen[0], (
        "compat.signal_handlers_restored_at_teardown: trainer._signal_connector._original_handlers is gone"
    )
    assert signal.getsignal(signal.SIGTERM) is replacement, (
        "compat.signal_handlers_restored_at_teardown: Lightning's teardown no longer restores _original_handlers"
    )


# --------------------------------------------------------------------------------------------- checkpoints


def _fitted_with_checkpoint(tmp_path: Path, callback: ModelCheckpoint, max_steps: int = 2) -> Trainer:
    trainer = _trainer(tmp_path, max_steps=max_steps, callbacks=[callback], enable_checkpointing=True)
    trainer.fit(_LoggingModel())
    return trainer


def test_write_checkpoint_file_writes_and_lightning_writes_through_the_overridden_hook(tmp_path: Path) -> None:
    written: list[str] = []

    class CountingCheckpoint(ModelCheckpoint):  # overrides the hook as GANCheckpoint does
        def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
            written.append(Path(filepath).name)
            compat.write_checkpoint_file(self, trainer, filepath)

    callback = CountingCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1, save_last=True)
    trainer = _fitted_with_checkpoint(tmp_path, callback)
    assert "last.ckpt" in written and len(written) >= 3, (
        "GANCheckpoint._save_checkpoint: Lightning no longer writes checkpoint files through "
        "ModelCheckpoint._save_checkpoint, so failed writes are no longer one CheckpointError line"
    )
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(set(written))

    compat.write_checkpoint_file(callback, trainer, str(tmp_path / "extra.ckpt"))
    saved = torch.load(tmp_path / "extra.ckpt", weights_only=False)
    assert saved["global_step"] == 2


def test_skips_checkpoint_now_follows_the_step_marked_saved(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1)
    trainer = _fitted_with_checkpoint(tmp_path, callback)
    message = "compat.skips_checkpoint_now / mark_step_saved: ModelCheckpoint._last_global_step_saved is gone"
    assert compat.skips_checkpoint_now(callback, trainer), message  # step 2 was saved
    compat.mark_step_saved(callback, -1)
    assert not compat.skips_checkpoint_now(callback, trainer), message
    compat.mark_step_saved(callback, trainer.global_step)
    assert compat.skips_checkpoint_now(callback, trainer), message


def test_checkpoint_candidates_hold_the_logged_values_and_the_step(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt")
    trainer = _fitted_with_checkpoint(tmp_path, callback)
    candidates = compat.checkpoint_candidates(callback, trainer)
    assert int(candidates["step"]) == 2 and int(candidates["epoch"]) == trainer.current_epoch
    assert "train/loss" in candidates


def test_save_last_checkpoint_file_writes_last_ckpt(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)
    trainer = _fitted_with_checkpoint(tmp_path, callback)
    last = tmp_path / "ckpt" / "last.ckpt"
    last.unlink(missing_ok=True)
    compat.save_last_checkpoint_file(callback, trainer)
    assert last.is_file(), "compat.save_last_checkpoint_file: ModelCheckpoint._save_last_checkpoint wrote nothing"
    assert callback.last_model_path == str(last)


def test_save_top_k_checkpoint_keeps_the_best(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "best", monitor="val", mode="min", save_top_k=1, filename="{val:.0f}")
    trainer = _fitted_with_checkpoint(tmp_path, callback)
    for value in (3.0, 5.0, 1.0):
        candidates = compat.checkpoint_candidates(callback, trainer)
        candidates["val"] = torch.tensor(value)
        compat.save_top_k_checkpoint(callback, trainer, candidates)
    assert [p.name for p in (tmp_path / "best").iterdir()] == ["val=1.ckpt"]
    assert float(callback.best_model_score) == 1.0


# ------------------------------------------------------------------------------------------------ loggers


def test_csv_writer_is_the_writer_lightnings_logger_uses(tmp_path: Path) -> None:
    logger = LightningCSVLogger(tmp_path, name="csv", version="")
    assert compat.existing_csv_writer(logger) is None
    made: list[str] = []

    def make(log_dir: str) -> ExperimentWriter:
        made.append(log_dir)
        return ExperimentWriter(log_dir)

    writer = compat.csv_writer(logger, make)
    assert compat.csv_writer(logger, make) is writer and made == [logger.log_dir]
    assert logger.experiment is writer, "compat.csv_writer: CSVLogger no longer keeps its writer in _experiment"
    assert compat.existing_csv_writer(logger) is writer
    logger.log_metrics({"x": 1.0}, step=0)
    logger.save()
    assert (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()[0] == "step,x"


def test_ganzoo_csv_writer_keeps_an_existing_metrics_file(tmp_path: Path) -> None:
    existing = tmp_path / "csv" / "metrics.csv"
    existing.parent.mkdir()
    existing.write_text("step,x\n0,1.0\n")
    LightningCSVLogger(tmp_path, name="csv", version="").experiment  # noqa: B018
    assert not existing.exists(), "Lightning's ExperimentWriter no longer deletes metrics.csv on creation"

    existing.write_text("step,x\n0,1.0\n")
    CSVLogger(str(tmp_path), name="csv").experiment  # noqa: B018
    assert hasattr(ExperimentWriter, "_check_log_dir_exists") and existing.read_text() == "step,x\n0,1.0\n", (
        "ganzoo.loggers._ContinuedMetricsFile: Lightning's ExperimentWriter no longer calls _check_log_dir_exists, "
        "so a resumed run's metrics.csv is deleted"
    )


@pytest.fixture
def wandb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """W&B's folders under ``tmp_path``, credentials for a server that refuses connections, and the run closed."""
    import os

    import wandb

    for name in [name for name in os.environ if name.startswith("WANDB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WANDB_MODE", "online")  # also undoes the WANDB_MODE Lightning sets for offline runs
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / "wandb" / name.lower()))
    yield tmp_path / "run"
    wandb.finish()
    wandb.teardown()


def test_wandb_init_arguments_are_what_the_run_starts_with(wandb_home: Path) -> None:
    import wandb

    logger = WandbLogger(
        save_dir=str(wandb_home), project="compat", name="args", settings=wandb.Settings(silent=True, init_timeout=20)
    )
    arguments = compat.wandb_init_arguments(logger)
    assert arguments["project"] == "compat" and arguments["dir"] == str(wandb_home)
    assert not compat.wandb_offline(logger) and not compat.wandb_run_started(logger)

    arguments["notes"] = "set through compat"
    compat.switch_wandb_offline(logger)  # the server refuses connections: an online start would fail
    assert compat.wandb_offline(logger), "compat.switch_wandb_offline: WandbLogger._offline is gone"
    run = logger.experiment
    assert compat.wandb_run_started(logger), "compat.wandb_run_started: WandbLogger._experiment is gone"
    assert run.offline, "compat.switch_wandb_offline: WandbLogger._offline / _wandb_init no longer make the run offline"
    assert run.name == "args" and run.notes == "set through compat", (
        "compat.wandb_init_arguments: WandbLogger._wandb_init is no longer what wandb.init is called with"
    )


# --------------------------------------------------------------------------------------- DDP under Hydra


def test_replace_hydra_child_command_is_what_lightnings_launcher_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies.launchers import subprocess_script

    from ganzoo.cli import CONFIG_DIR

    for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE"):
        # Set, then removed: what the launcher sets in this process's environment is undone afterwards too.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    calls: list[int] = []

    def command(local_rank: int) -> tuple[list[str], str]:
        calls.append(local_rank)
        write = "import os, pathlib; pathlib.Path('rank').write_text(os.environ['LOCAL_RANK'])"
        return [sys.executable, "-c", write], str(tmp_path)

    previous = compat.replace_hydra_child_command(command)
    hydra_before = HydraConfig.instance().cfg
    launcher = subprocess_script._SubprocessScriptLauncher(LightningEnvironment(), num_processes=2, num_nodes=1)
    try:
        # Checked first, so that a changed launcher never starts its own command (this test run again).
        uses = "_hydra_subprocess_cmd" in launcher._call_children_scripts.__code__.co_names
        assert uses and subprocess_script._hydra_subprocess_cmd is command, (
            "compat.replace_hydra_child_command: Lightning's launcher no longer looks up "
            "subprocess_script._hydra_subprocess_cmd when it starts a Hydra job's DDP processes"
        )
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            HydraConfig.instance().set_config(compose("train", return_hydra_config=True))
            launcher._call_children_scripts()
    finally:
        HydraConfig.instance().cfg = hydra_before
        replaced = compat.replace_hydra_child_command(previous)
        for process in launcher.procs:
            process.wait(timeout=60)
    assert replaced is command and subprocess_script._hydra_subprocess_cmd is previous
    assert calls == [1], (
        "compat.replace_hydra_child_command: Lightning's launcher no longer builds a Hydra job's DDP processes "
        "with subprocess_script._hydra_subprocess_cmd"
    )
    assert [p.returncode for p in launcher.procs] == [0] and (tmp_path / "rank").read_text() == "1"


# ------------------------------------------------------------------------------------- torchmetrics states


class _TinyFeatures(nn.Module):
    """A feature "network" for the metrics: uint8 images (N, 3, H, W) -> per-channel means (N, 3)."""

    num_features = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(2, 3))


def _images(n: int, seed: int, shift: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 200, (n, 3, 4, 4), generator=generator) + shift).to(torch.uint8)


def test_fid_real_statistics_move_the_real_side_between_metrics() -> None:
    real, fake = _images(12, 0), _images(10, 1, shift=40)
    fid = FrechetInceptionDistance(feature=_TinyFeatures())
    fid.update(real, real=True)
    statistics = compat.fid_real_statistics(fid)
    features = _TinyFeatures()(real).double()
    assert int(statistics["real_features_num_samples"]) == 12
    assert torch.allclose(statistics["real_features_sum"], features.sum(0))
    assert torch.allclose(statistics["real_features_cov_sum"], features.T @ features)

    loaded = FrechetInceptionDistance(feature=_TinyFeatures())
    compat.set_fid_real_statistics(loaded, statistics)
    fid.update(fake, real=False)
    loaded.update(fake, real=False)
    assert torch.allclose(loaded.compute(), fid.compute()), (
        "compat.set_fid_real_statistics: FID's real_features_* states no longer are its real side"
    )

    empty = compat.empty_fid_real_statistics(3)
    fresh = compat.fid_real_statistics(FrechetInceptionDistance(feature=_TinyFeatures()))
    assert {k: (v.shape, v.dtype) for k, v in empty.items()} == {k: (v.shape, v.dtype) for k, v in fresh.items()}
    assert all(not v.any() for v in empty.values())


def test_set_kid_real_features_and_subset_size_drive_the_computation() -> None:
    real, fake = _images(12, 0), _images(10, 1, shift=40)
    kid = KernelInceptionDistance(feature=_TinyFeatures(), subsets=3)  # subset_size 1000: more than there are
    kid.update(real[:5], real=True)
    kid.update(real[5:], real=True)

    loaded = KernelInceptionDistance(feature=_TinyFeatures(), subsets=3)
    compat.set_kid_real_features(loaded, _TinyFeatures()(real))
    for metric in (kid, loaded):
        metric.update(fake, real=False)
        with pytest.raises(ValueError, match="subset_size"):
            metric.compute()
        compat.set_kid_subset_size(metric, 8)
    torch.manual_seed(0)
    mean, _ = kid.compute()
    torch.manual_seed(0)
    loaded_mean, _ = loaded.compute()
    assert torch.allclose(mean, loaded_mean), (
        "compat.set_kid_real_features / set_kid_subset_size: KID's real_features / subset_size changed meaning"
    )
