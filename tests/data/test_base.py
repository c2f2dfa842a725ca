from pathlib import Path

import lightning as L
import pytest
import torch

from ganzoo.data import FashionMNISTDataModule, ImageFolderDataModule
from ganzoo.errors import ConfigError, DataError
from tests.data.writers import write_image_folder


class _TinyModel(L.LightningModule):
    """Consumes (image, label) batches; only here to let a Trainer drive the DataModule."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.shapes: list[tuple[int, ...]] = []

    def training_step(self, batch, batch_idx):
        images, labels = batch
        self.shapes.append(tuple(images.shape))
        return self.layer(images.mean(dim=(1, 2, 3))[:, None]).mean()

    def validation_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch[0].shape))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_drives_datamodule_and_checkpoints_hparams(fashion_root: Path, no_system_dir: str, tmp_path: Path):
    dm = FashionMNISTDataModule(str(fashion_root), image_size=16, batch_size=8, system_dir=no_system_dir, flip=True)
    model = _TinyModel()
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert (8, 1, 16, 16) in model.shapes
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["datamodule_hyper_parameters"]
    assert saved["image_size"] == 16 and saved["system_dir"] == no_system_dir and saved["flip"] is True
    restored = FashionMNISTDataModule.load_from_checkpoint(path)
    assert (restored.image_size, restored.batch_size, restored.system_dir) == (16, 8, Path(no_system_dir))


def test_folder_hparams_include_subclass_arguments(tmp_path: Path):
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, load_size=40, val_fraction=0.1, num_classes=0, seed=3)
    assert dm.hparams["load_size"] == 40 and dm.hparams["val_fraction"] == 0.1
    assert dm.hparams["num_classes"] == 0 and dm.hparams["seed"] == 3 and dm.hparams["data_dir"] == str(tmp_path)


def test_loader_options(tmp_path: Path):
    write_image_folder(tmp_path, n=5, size=32)
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=2, persistent_workers=True)
    assert dm.persistent_workers is False, "no persistent workers without workers"
    train, val = dm.train_dataloader(), dm.val_dataloader()  # set up on demand
    assert len(train) == 2 and len(val) == 3
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=2, drop_last=False)
    assert len(dm.train_dataloader()) == 3


def test_train_set_smaller_than_batch(tmp_path: Path):
    write_image_folder(tmp_path, n=3, size=32)
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=4)
    with pytest.raises(
        DataError, match="the train set has 3 images, fewer than data.batch_size=4: lower data.batch_size"
    ):
        dm.train_dataloader()
    assert len(dm.val_dataloader()) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 0}, "data.image_size must be a positive integer, got 0: set data.image_size=64"),
        ({"batch_size": 2.5}, "data.batch_size must be a positive integer, got 2.5"),
        ({"channels": 4}, "data.channels must be 1 or 3, got 4"),
        ({"num_workers": -1}, "data.num_workers must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        FashionMNISTDataModule(**kwargs)
