from pathlib import Path

import lightning as L
import pytest
import torch

from ganzoo.data import FashionMNISTDataModule, ImageFolderDataModule
from ganzoo.errors import ConfigError, DataError
from tests.builders import quiet_trainer
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
    trainer = quiet_trainer(tmp_path, limit_val_batches=1, enable_checkpointing=True)
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
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=2, num_workers=0, persistent_workers=True)
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
        ({"num_workers": -1}, "data.num_workers must be auto or an integer >= 0, got -1: set data.num_workers=auto"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        FashionMNISTDataModule(**kwargs)


def _data_modules(root: Path, no_system_dir: str) -> dict[str, object]:
    from ganzoo.data.cifar import CIFAR10DataModule
    from ganzoo.data.fmnist_domains import FashionMNISTDomainsDataModule
    from ganzoo.data.paired import PairedImageDataModule
    from ganzoo.data.unpaired import UnpairedImageFolderDataModule

    return {
        "fashion_mnist": FashionMNISTDataModule(str(root), image_size=16, system_dir=no_system_dir, download=False),
        "fmnist_domains": FashionMNISTDomainsDataModule(str(root), system_dir=no_system_dir, download=False),
        "cifar10": CIFAR10DataModule(str(root), image_size=32, download=False),
        "image_folder": ImageFolderDataModule(str(root / "images"), image_size=16),
        "unpaired": UnpairedImageFolderDataModule(str(root / "horse2zebra"), image_size=16, load_size=16),
        "paired": PairedImageDataModule(str(root / "facades"), image_size=16, load_size=16),
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fashion_mnist", "Fashion-MNIST not found"),
        ("fmnist_domains", "Fashion-MNIST not found"),
        ("cifar10", "CIFAR-10 not found"),
        ("image_folder", "images does not exist"),
        ("unpaired", "horse2zebra/trainA does not exist: run `python -m ganzoo.data.download horse2zebra"),
        ("paired", "facades does not exist"),
    ],
)
def test_check_available_reports_missing_data_without_reading(
    name: str, expected: str, tmp_path: Path, no_system_dir: str
) -> None:
    # Nothing on disk and no download allowed: the check names what is missing before anything is read.
    with pytest.raises(DataError, match=expected.replace("(", r"\(")):
        _data_modules(tmp_path, no_system_dir)[name].check_available()  # type: ignore[attr-defined]


def test_check_available_accepts_data_that_is_there(tmp_path: Path, no_system_dir: str) -> None:
    from tests.data.writers import write_aligned_pairs, write_cifar10, write_fashion_mnist, write_unpaired_folders

    write_fashion_mnist(tmp_path, n_train=20, n_test=10)
    write_cifar10(tmp_path, n_train=10, n_test=10)
    write_image_folder(tmp_path / "images", n=4, size=16)
    write_unpaired_folders(tmp_path / "horse2zebra", n_train_a=2, n_train_b=2, n_test_a=1, n_test_b=1)
    write_aligned_pairs(tmp_path / "facades", n_train=2, n_val=1, size=16)
    for module in _data_modules(tmp_path, no_system_dir).values():
        module.check_available()  # type: ignore[attr-defined]
    # A download that may still fetch the files is not a reason to stop.
    FashionMNISTDataModule(str(tmp_path / "empty"), image_size=16, system_dir=no_system_dir).check_available()
