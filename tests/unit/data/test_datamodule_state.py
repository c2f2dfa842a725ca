"""What a DataModule keeps in checkpoints: the train loader's position (resumes continue the epoch exactly)
and its hyperparameters (saved, but not merged into the logged ones)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from ganzoo.data import ImageFolderDataModule
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from tests.data.writers import write_image_folder, write_unpaired_folders

#: 10 images, batch 3, drop_last: 3 batches an epoch, and an item left over that no batch takes.
N_IMAGES, BATCH = 10, 3


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images", n=N_IMAGES, size=(24, 20))


def folder_data(root: Path, **kwargs) -> ImageFolderDataModule:
    """Random crops (20 -> 16) and flips, so a batch differs from epoch to epoch and from seed to seed."""
    kwargs = {"image_size": 16, "load_size": 20, "flip": True, "batch_size": BATCH, "seed": 5, **kwargs}
    return ImageFolderDataModule(str(root), **kwargs)


def test_state_dict_round_trips_the_position_and_resumes_at_the_next_batch(tmp_path: Path) -> None:
    # Two workers draw the sampler's keys ahead of the consumer: the position must count batches taken, not keys.
    root = write_unpaired_folders(tmp_path / "pairs", n_train_a=5, n_train_b=9, n_test_a=1, n_test_b=1)
    kwargs = {"image_size": 16, "load_size": 20, "batch_size": 2, "num_workers": 2, "seed": 3}
    data = UnpairedImageFolderDataModule(str(root), **kwargs)
    assert data.state_dict() == {}  # no loader yet: nothing to save
    uninterrupted = list(data.train_dataloader())
    assert len(uninterrupted) == 4  # 9 pairs, batch 2, drop_last

    interrupted = UnpairedImageFolderDataModule(str(root), **kwargs)
    batches = iter(interrupted.train_dataloader())
    for _ in range(3):
        next(batches)
    state = interrupted.state_dict()
    assert state == {"train_position": {"epoch": 0, "items": 6}}

    resumed = UnpairedImageFolderDataModule(str(root), **kwargs)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state  # restored, and saved again as it is until a loader takes over
    rest = list(resumed.train_dataloader())
    assert len(rest) == 1
    for got, want in zip(rest[0], uninterrupted[3], strict=True):
        assert torch.equal(got, want)
    assert resumed.state_dict() == {"train_position": {"epoch": 0, "items": 8}}


def test_a_position_at_the_end_of_an_epoch_resumes_with_the_next_epoch(folder: Path) -> None:
    data = folder_data(folder)
    data.load_state_dict({"train_position": {"epoch": 2, "items": 9}})  # 3 full batches of epoch 2 taken
    loader = data.train_dataloader()
    assert (loader.sampler.epoch, loader.sampler.next_start) == (3, 0)
    assert data.state_dict() == {"train_position": {"epoch": 3, "items": 0}}


class _RecordingModel(L.LightningModule):
    """Keeps every training batch's images, to compare what a resumed run trains on with the uninterrupted run."""

    def __init__(self, batch_size: int = 1) -> None:
        super().__init__()
        # A hyperparameter named like the data's, with another value (as BigGAN's batch_size is).
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(1, 1)
        self.images: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        self.images.append(batch[0].clone())
        return self.layer(batch[0].mean(dim=(1, 2, 3))[:, None]).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _SaveAtStep(L.Callback):
    def __init__(self, step: int, path: Path) -> None:
        self.step = step
        self.path = path

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


def _fit(data: ImageFolderDataModule, max_steps: int, tmp_path: Path, ckpt_path: Path | None = None, callbacks=()):
    model = _RecordingModel()
    trainer = L.Trainer(
        max_steps=max_steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
        use_distributed_sampler=False,
        logger=CSVLogger(tmp_path / "logs"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model.images


@pytest.mark.parametrize("saved_at", [2, 3, 4], ids=["mid_epoch_0", "epoch_end", "mid_epoch_1"])
@pytest.mark.parametrize("old_checkpoint", [False, True], ids=["with_position", "without_position"])
def test_resumed_fit_trains_on_the_batches_of_the_uninterrupted_run(
    folder: Path, tmp_path: Path, saved_at: int, old_checkpoint: bool
) -> None:
    full = _fit(folder_data(folder), 7, tmp_path / "full")
    assert len(full) == 7
    assert not torch.equal(full[0], full[3])  # epoch 1 is another order, with other crops and flips

    path = tmp_path / "step.ckpt"
    _fit(folder_data(folder), saved_at, tmp_path / "first", callbacks=[_SaveAtStep(saved_at, path)])
    checkpoint = torch.load(path, weights_only=False)
    # Saved after the step's batch: 3 batches an epoch, so step 3 has taken all of epoch 0's.
    epoch, batches = (saved_at - 1) // 3, (saved_at - 1) % 3 + 1
    assert checkpoint["ImageFolderDataModule"] == {"train_position": {"epoch": epoch, "items": BATCH * batches}}
    if old_checkpoint:  # written before DataModules saved their position: resumed from global_step
        del checkpoint["ImageFolderDataModule"]
        torch.save(checkpoint, path)

    resumed = _fit(folder_data(folder), 7, tmp_path / "resumed", ckpt_path=path)
    assert len(resumed) == 7 - saved_at
    for step, (got, want) in enumerate(zip(resumed, full[saved_at:], strict=True), start=saved_at):
        assert torch.equal(got, want), f"step {step + 1} trained on other images than the uninterrupted run"


def test_hyperparameters_are_checkpointed_but_not_merged_into_the_logged_ones(folder: Path, tmp_path: Path) -> None:
    data = folder_data(folder, batch_size=2)
    # The model's batch_size (1) differs from the data's (2): a merge of the two would fail.
    _fit(data, 1, tmp_path)
    assert data.hparams["batch_size"] == 2 and data.hparams["load_size"] == 20
    hparams = (tmp_path / "logs" / "lightning_logs" / "version_0" / "hparams.yaml").read_text()
    assert "batch_size: 1" in hparams and "load_size" not in hparams
