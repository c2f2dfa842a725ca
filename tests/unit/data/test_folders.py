import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.data import ImageFolderDataModule, UnreadableImageError
from ganzoo.data.image_file import load_image
from ganzoo.errors import ConfigError, DataError
from tests.data.checks import assert_image_batch
from tests.data.writers import make_image, write_image_folder


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_unlabeled_batches(tmp_path: Path, image_size: int, channels: int):
    write_image_folder(tmp_path, n=6, size=(80, 70))
    # In-process loading (no workers): these tests read batch contents, and an iterator abandoned with live worker
    # processes is torn down at garbage collection, which can stall or crash a pytest-xdist worker.
    dm = ImageFolderDataModule(
        str(tmp_path), image_size=image_size, channels=channels, batch_size=4, flip=True, num_workers=0
    )
    assert (dm.image_size, dm.channels, dm.num_classes, dm.class_names) == (image_size, channels, 0, [])
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 6 and len(dm.val_set) == 6
    assert_image_batch(next(iter(dm.train_dataloader())), 4, channels, image_size, 0)
    val = list(dm.val_dataloader())
    assert [len(b[1]) for b in val] == [4, 2]
    assert_image_batch(val[0], 4, channels, image_size, 0)


def test_class_subfolders(tmp_path: Path):
    write_image_folder(tmp_path, n=3, size=36, classes=["dogs", "cats", "birds"])
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=9, num_workers=0)
    assert dm.num_classes == 3
    assert dm.class_names == ["birds", "cats", "dogs"]
    dm.setup()
    images, labels = next(iter(dm.val_dataloader()))
    assert_image_batch((images, labels), 9, 3, 32, 3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_recursive_discovery_and_filters(tmp_path: Path):
    write_image_folder(tmp_path / "a" / "deep" / "er", n=2, size=32)
    write_image_folder(tmp_path / "a", n=1, size=32, ext=".JPG")
    write_image_folder(tmp_path / "b", n=2, size=32, ext=".Tiff")
    write_image_folder(tmp_path / "c", n=1, size=32, ext=".webp")
    write_image_folder(tmp_path / "d", n=1, size=32, ext=".bmp")
    write_image_folder(tmp_path / "d", n=1, size=32, mode="P", ext=".gif")
    write_image_folder(tmp_path / ".hidden", n=3, size=32)  # not a class, not scanned
    (tmp_path / "empty").mkdir()  # no images: not a class
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    make_image(32, 32).save(tmp_path / "b" / ".thumb.png")
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=8)
    assert dm.class_names == ["a", "b", "c", "d"]
    dm.setup()
    assert len(dm.train_set) == 3 + 2 + 1 + 2
    labels = torch.stack([dm.val_set[i][1] for i in range(len(dm.val_set))])
    assert labels.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]


def test_images_at_top_level_make_the_folder_unlabeled(tmp_path: Path):
    write_image_folder(tmp_path, n=2, size=32, classes=["x", "y"])
    write_image_folder(tmp_path, n=1, size=32)
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=2)
    assert dm.num_classes == 0
    dm.setup()
    assert len(dm.train_set) == 5


def test_num_classes_zero_ignores_subfolders(tmp_path: Path):
    write_image_folder(tmp_path, n=2, size=32, classes=["x", "y"])
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=2, num_classes=0)
    assert dm.num_classes == 0 and dm.class_names == []
    dm.setup()
    assert dm.train_set[0][1].item() == -1


def test_num_classes_mismatch(tmp_path: Path):
    write_image_folder(tmp_path, n=1, size=32, classes=["x", "y"])
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, num_classes=5)
    assert dm.num_classes == 5  # known before setup, for config interpolation
    with pytest.raises(DataError, match=r"has 2 class subfolders but data.num_classes=5: set data.num_classes=2"):
        dm.setup()
    dm = ImageFolderDataModule(str(tmp_path / "x"), image_size=32, num_classes=2)
    with pytest.raises(DataError, match=r"has no class subfolders but data.num_classes=2: set data.num_classes=0"):
        dm.setup()


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "I;16", "CMYK"])
@pytest.mark.parametrize("channels", [1, 3])
def test_modes_are_converted(tmp_path: Path, mode: str, channels: int):
    write_image_folder(tmp_path, n=2, size=(40, 34), mode=mode)
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, channels=channels, batch_size=2, num_workers=0)
    dm.setup()
    assert_image_batch(next(iter(dm.val_dataloader())), 2, channels, 32, 0)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path):
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode.startswith("I")
    assert load_image(tmp_path / "a.png", 1).unique().tolist() == [round(40000 / 257)]


def test_transparency_is_composited_on_white(tmp_path: Path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", 3)
    assert x[:, 0, 0].tolist() == [255, 0, 0]
    assert x[:, 1, 1].tolist() == [255, 255, 255]


def test_native_size_pixels_round_trip(tmp_path: Path):
    write_image_folder(tmp_path, n=1, size=32)
    expected = np.asarray(Image.open(tmp_path / "img0000.png"))
    dm = ImageFolderDataModule(str(tmp_path), image_size=32)
    dm.setup()
    image, label = dm.val_set[0]
    assert np.array_equal(image.add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)
    assert label.item() == -1 and label.dtype == torch.int64


def test_load_size_crops(tmp_path: Path):
    write_image_folder(tmp_path, n=2, size=(100, 50))
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, load_size=40, batch_size=2)
    dm.setup()
    assert dm.val_set[0][0].shape == (3, 32, 32)
    torch.manual_seed(0)
    crops = [dm.train_set[0][0] for _ in range(8)]
    assert any(not torch.equal(crops[0], c) for c in crops[1:]), "train crops are random"
    assert torch.equal(dm.val_set[0][0], dm.val_set[0][0]), "val crops are fixed"
    with pytest.raises(ConfigError, match="data.load_size=16 is smaller than data.image_size=32"):
        ImageFolderDataModule(str(tmp_path), image_size=32, load_size=16)


def test_val_split_is_deterministic(tmp_path: Path):
    write_image_folder(tmp_path, n=20, size=32, classes=["a", "b"])

    def split(seed: int) -> tuple[list[str], list[str]]:
        dm = ImageFolderDataModule(str(tmp_path), image_size=32, val_fraction=0.25, seed=seed)
        dm.setup()
        return list(dm.train_set.files), list(dm.val_set.files)

    train, val = split(0)
    assert len(train) == 30 and len(val) == 10
    assert not set(train) & set(val)
    assert split(0) == (train, val)
    assert split(1)[1] != val
    with pytest.raises(ConfigError, match="data.val_fraction must be in"):
        ImageFolderDataModule(str(tmp_path), val_fraction=1.0)


def test_val_fraction_too_large_for_tiny_folder(tmp_path: Path):
    write_image_folder(tmp_path, n=1, size=32)
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, val_fraction=0.5)
    with pytest.raises(DataError, match="has only 1 images, too few to hold out data.val_fraction=0.5"):
        dm.setup()


def test_missing_folder(tmp_path: Path):
    missing = tmp_path / "nope"
    dm = ImageFolderDataModule(str(missing), num_classes=0)
    with pytest.raises(DataError) as e:
        dm.setup()
    assert str(e.value) == (
        f"image folder {missing} does not exist: create it and put images in it, "
        "or set data.data_dir=<a folder of images>"
    )


def test_folder_without_images(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("hi")
    dm = ImageFolderDataModule(str(tmp_path))
    with pytest.raises(
        DataError, match=rf"^image folder {tmp_path} contains no images \(.png, .jpg, .jpeg,.*\): put images"
    ):
        dm.setup()


def _write_corrupt(folder: Path) -> Path:
    write_image_folder(folder, n=7, size=32)
    bad = folder / "img0003.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    return bad


def test_corrupt_file_is_named(tmp_path: Path):
    bad = _write_corrupt(tmp_path)
    (tmp_path / "zz.jpg").write_bytes(b"this is not a jpeg")
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=4)
    dm.setup()  # files are not opened at setup
    for path in (bad, tmp_path / "zz.jpg"):
        index = list(dm.val_set.files).index(str(path))
        with pytest.raises(DataError) as e:
            dm.val_set[index]
        message = str(e.value)
        assert message.startswith(f"cannot read image {path} (") and message.endswith("remove or replace this file")
        assert "\n" not in message


def test_unreadable_image_error_pickles():
    error = UnreadableImageError("cannot read image /x.png (bad): remove or replace this file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnreadableImageError and str(copy) == str(error)


def test_workers(tmp_path: Path):
    write_image_folder(tmp_path, n=6, size=40, classes=["a", "b"])
    dm = ImageFolderDataModule(
        str(tmp_path), image_size=32, batch_size=4, num_workers=2, persistent_workers=True, flip=True
    )
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    for batch in batches:
        assert_image_batch(batch, 4, 3, 32, 2)


def test_corrupt_file_error_crosses_workers(tmp_path: Path):
    bad = _write_corrupt(tmp_path)
    dm = ImageFolderDataModule(str(tmp_path), image_size=32, batch_size=2, num_workers=2, drop_last=False)
    dm.setup()
    batches = iter(dm.val_dataloader())
    try:
        with pytest.raises(DataError) as e:
            list(batches)
    finally:
        # The traceback keeps the iterator in a reference cycle; torch's cleanup of such a
        # cycle under gc waits 5 s per worker, so stop the workers explicitly.
        batches._shutdown_workers()
    assert isinstance(e.value, UnreadableImageError)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"cannot read image {bad} (") and message.endswith("remove or replace this file")


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path: Path):
    make_image(400, 300).save(tmp_path / "big.jpg")
    full = load_image(tmp_path / "big.jpg", 3)
    reduced = load_image(tmp_path / "big.jpg", 3, min_size=64)
    assert full.shape == (3, 300, 400)
    assert reduced.shape == (3, 75, 100)  # 1/4 scale keeps the short side >= 64
    dm = ImageFolderDataModule(str(tmp_path), image_size=64)
    dm.setup()
    assert dm.val_set[0][0].shape == (3, 64, 64)


def test_exif_orientation_is_applied(tmp_path: Path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    make_image(60, 40).save(tmp_path / "photo.jpg", exif=exif)
    assert load_image(tmp_path / "photo.jpg", 1).shape == (1, 60, 40)
