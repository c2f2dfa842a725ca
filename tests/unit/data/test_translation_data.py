"""Translation data (CycleGAN, pix2pix): real loaders on files written in the official layouts."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from ganzoo.cli import CONFIG_DIR
from ganzoo.data.download import safe_extract
from ganzoo.data.fmnist_domains import FashionMNISTDomainsDataModule
from ganzoo.data.image_file import IMAGE_EXTENSIONS
from ganzoo.data.paired import PairedImageDataModule
from ganzoo.data.sampler import EpochShuffleSampler
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from ganzoo.errors import ConfigError, DataError
from tests.data.writers import write_aligned_pairs, write_unpaired_folders

SIZE, LOAD = 16, 20
N_A, N_B = 5, 8


@pytest.fixture
def unpaired_root(tmp_path: Path) -> Path:
    """An official-layout dataset folder named like an official dataset (for the download hint)."""
    return write_unpaired_folders(tmp_path / "horse2zebra", n_train_a=N_A, n_train_b=N_B, n_test_a=3, n_test_b=2)


def unpaired(root: Path, **kwargs) -> UnpairedImageFolderDataModule:
    # No worker processes unless a test asks: iterators abandoned with live workers stall their teardown.
    kwargs = {"image_size": SIZE, "load_size": LOAD, "batch_size": 2, "num_workers": 0, **kwargs}
    dm = UnpairedImageFolderDataModule(str(root), **kwargs)
    dm.setup()
    return dm


def check_pair_batch(batch, n: int, channels: int, size: int) -> None:
    real_a, real_b = batch
    for x in (real_a, real_b):
        assert x.shape == (n, channels, size, size)
        assert x.dtype == torch.float32
        assert x.min() >= -1.0 and x.max() <= 1.0
        assert x.std() > 0.05


def test_unpaired_loaders_shapes_and_epoch_length(unpaired_root: Path) -> None:
    dm = unpaired(unpaired_root)
    assert dm.num_classes == 0
    assert len(dm.train_set) == max(N_A, N_B)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == max(N_A, N_B) // 2
    for batch in batches:
        check_pair_batch(batch, 2, 3, SIZE)
    val = list(dm.val_dataloader())
    assert len(dm.val_set) == 3  # max(|testA|, |testB|)
    check_pair_batch(val[0], 2, 3, SIZE)
    assert val[1][0].shape == (1, 3, SIZE, SIZE)


def test_unpaired_b_is_random_but_a_function_of_the_seed(unpaired_root: Path) -> None:
    dm = unpaired(unpaired_root)
    train = dm.train_set
    picks = [train.pick((3, seed)) for seed in range(40)]
    assert all(key_a[0] == 3 % N_A for key_a, _ in picks)
    b_indices = {key_b[0] for _, key_b in picks}
    assert len(b_indices) >= 4 and b_indices <= set(range(N_B))
    # Different sub-seeds for A and B: the two crops are independent.
    assert all(key_a[1] != key_b[1] for key_a, key_b in picks)
    first, again = train[(3, 12345)], train[(3, 12345)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    # Augmentation comes from the seed too: another seed crops/flips A differently at least once.
    assert any(not torch.equal(train[(3, s)][0], first[0]) for s in range(5))
    # Val pairs are fixed: A[i % |A|], B[i % |B|], no augmentation.
    assert [dm.val_set.pick(i) for i in range(3)] == [(0, 0), (1, 1), (2, 0)]


def test_unpaired_resume_continues_the_epoch(unpaired_root: Path) -> None:
    dm = unpaired(unpaired_root)
    sampler = EpochShuffleSampler(len(dm.train_set), seed=dm.seed)
    sampler.set_epoch(2)
    full = list(DataLoader(dm.train_set, batch_size=1, sampler=sampler))
    sampler.resume(2, 3)
    rest = list(DataLoader(dm.train_set, batch_size=1, sampler=sampler))
    assert len(rest) == len(full) - 3
    for (a1, b1), (a2, b2) in zip(full[3:], rest, strict=True):
        assert torch.equal(a1, a2) and torch.equal(b1, b2)


def test_unpaired_ddp_shards_are_disjoint_and_items_do_not_depend_on_the_shard(unpaired_root: Path) -> None:
    dm = unpaired(unpaired_root)
    n = len(dm.train_set)
    single = dict(EpochShuffleSampler(n, seed=7))
    shards = [list(EpochShuffleSampler(n, seed=7, num_replicas=2, rank=r)) for r in range(2)]
    indices = [{i for i, _ in shard} for shard in shards]
    assert indices[0].isdisjoint(indices[1]) and indices[0] | indices[1] == set(range(n))
    for shard in shards:
        for index, seed in shard:
            assert single[index] == seed
    index, seed = shards[1][0]
    item = DataLoader(dm.train_set, batch_size=1, sampler=[(index, seed)])
    (a, b), (a_ref, b_ref) = next(iter(item)), dm.train_set[(index, seed)]
    assert torch.equal(a[0], a_ref) and torch.equal(b[0], b_ref)


def test_grey_and_rgba_images_are_converted(unpaired_root: Path) -> None:
    rgb = unpaired(unpaired_root)
    grey_file = rgb.domain_dataset("A", "train")[1][0]  # a1 is a grey (L) image
    assert grey_file.shape == (3, SIZE, SIZE)
    assert torch.equal(grey_file[0], grey_file[1]) and torch.equal(grey_file[1], grey_file[2])
    grey = unpaired(unpaired_root, channels=1)
    check_pair_batch(next(iter(grey.train_dataloader())), 2, 1, SIZE)
    image, label = grey.domain_dataset("B", "train")[2]  # b2 is RGBA, in trainB/sub
    assert image.shape == (1, SIZE, SIZE) and label == -1


def test_eval_dataset_fingerprint_and_fixed_examples(unpaired_root: Path) -> None:
    dm = unpaired(unpaired_root)
    b_val = dm.eval_dataset("val")
    assert len(b_val) == 2
    image, label = b_val[0]
    assert torch.equal(image, dm.domain_dataset("B", "val")[0][0]) and label == -1
    assert dm.fingerprint("val") == dm.fingerprint("val") != dm.fingerprint("train")
    # Un-augmented train images are stretched to image_size, identical on every call.
    assert torch.equal(dm.domain_dataset("A", "train")[0][0], dm.domain_dataset("A", "train")[0][0])
    fixed_a, fixed_b = dm.fixed_examples(3)
    assert fixed_a.shape == fixed_b.shape == (3, 3, SIZE, SIZE)
    assert torch.equal(fixed_b[2], fixed_b[0])  # testB has 2 images: repeats from the start
    assert torch.equal(fixed_a[1], dm.domain_dataset("A", "val")[1][0])
    with pytest.raises(ConfigError, match="unknown domain 'C'"):
        dm.domain_dataset("C", "val")


def test_missing_and_empty_folders_name_the_folder_and_the_fix(unpaired_root: Path) -> None:
    root = unpaired_root
    for f in (root / "testB").iterdir():
        f.unlink()
    (root / "testB").rmdir()
    with pytest.raises(DataError) as missing:
        unpaired(root)
    assert str(missing.value) == (
        f"{root}/testB does not exist: run `python -m ganzoo.data.download horse2zebra --data-dir {root.parent}`, "
        f"or put the val images of domain B there (layout: {root}/trainA, trainB, testA, testB), "
        "or set data.data_dir=<dataset folder>"
    )
    other = root.parent / "mine"
    (other / "trainA").mkdir(parents=True)
    with pytest.raises(DataError) as empty:
        unpaired(other)
    assert str(empty.value) == (
        f"{other}/trainA contains no images ({', '.join(IMAGE_EXTENSIONS)}): put the train images of domain A "
        f"there (layout: {other}/trainA, trainB, testA, testB), or set data.data_dir=<dataset folder>"
    )


@pytest.mark.parametrize("split_dirs", [False, True], ids=["side_by_side", "A_B_folders"])
def test_paired_gets_the_same_crop_and_flip(tmp_path: Path, split_dirs: bool) -> None:
    root = write_aligned_pairs(tmp_path / "pairs", n_train=4, n_val=2, size=32, split_dirs=split_dirs)
    dm = PairedImageDataModule(str(root), image_size=SIZE, load_size=LOAD, batch_size=2, num_workers=0)
    dm.setup()
    check_pair_batch(next(iter(dm.train_dataloader())), 2, 3, SIZE)
    check_pair_batch(next(iter(dm.val_dataloader())), 2, 3, SIZE)
    train = dm.train_set
    seen, flips = set(), 0
    for seed in range(24):
        a, b = train[(1, seed)]
        # B = 255 - A pixel for pixel, so a + b is ~0 only where both were cropped and flipped alike.
        assert (a + b).abs().max() <= 2 / 127.5
        # The images are not mirror-symmetric: mirroring one side only would break that.
        assert (a + b.flip(-1)).abs().max() > 0.5
        seen.add(a.sum().item())
        flips += train.transform.draw(seed, LOAD, LOAD).flip
    assert len(seen) > 12, "crops and flips should vary with the seed"
    assert 4 <= flips <= 20, "about half the items should be mirrored"
    # Every item of an epoch through the real loader (sampler keys, workers' batches) stays aligned too.
    for real_a, real_b in dm.train_dataloader():
        assert (real_a + real_b).abs().max() <= 2 / 127.5
    a_val, b_val = dm.val_set[0]
    assert (a_val + b_val).abs().max() <= 2 / 127.5
    swapped = PairedImageDataModule(str(root), image_size=SIZE, load_size=LOAD, direction="BtoA")
    swapped.setup()
    sa, sb = swapped.train_set[(1, 5)]
    a, b = train[(1, 5)]
    assert torch.equal(sa, b) and torch.equal(sb, a)
    assert torch.equal(swapped.eval_dataset("val")[0][0], dm.domain_dataset("A", "val")[0][0])


@pytest.mark.parametrize(
    ("folder", "config"),
    [("facades", "facades_unpaired"), ("horse2zebra", "horse2zebra"), ("mine", "unpaired")],
)
def test_paired_data_refuses_the_unpaired_layout_and_names_the_config_that_reads_it(
    tmp_path: Path, folder: str, config: str
) -> None:
    root = write_unpaired_folders(tmp_path / folder, n_train_a=2, n_train_b=2, n_test_a=1, n_test_b=1)
    dm = PairedImageDataModule(str(root), image_size=SIZE, load_size=LOAD)
    expected = (
        f"{root} holds the unpaired CycleGAN layout (trainA, trainB), not aligned pairs: train an unpaired model on "
        f"it with data={config} data.data_dir={root}, or point data.data_dir at a folder of pairs (train/ with A|B "
        "side by side, or A/train + B/train)"
    )
    for step in (dm.check_available, dm.setup):
        with pytest.raises(DataError) as e:
            step()
        assert str(e.value) == expected
    # The fix works: the named config reads the folder.
    fixed = UnpairedImageFolderDataModule(str(root), image_size=SIZE, load_size=LOAD, batch_size=1)
    fixed.check_available()
    fixed.setup()
    assert not fixed.paired and len(fixed.train_set) == 2


def test_missing_paired_data_offers_the_download_of_official_pix2pix_sets_only(tmp_path: Path) -> None:
    with pytest.raises(DataError) as official:
        PairedImageDataModule(str(tmp_path / "facades")).check_available()
    assert str(official.value).endswith(
        f"or set data.data_dir=<dataset folder>, or run `python -m ganzoo.data.download facades --data-dir {tmp_path}`"
    )
    with pytest.raises(DataError) as cyclegan:  # horse2zebra is unpaired: its download would not help here
        PairedImageDataModule(str(tmp_path / "horse2zebra")).check_available()
    assert str(cyclegan.value).endswith("or set data.data_dir=<dataset folder>")


def test_paired_mismatched_names_are_listed(tmp_path: Path) -> None:
    root = write_aligned_pairs(tmp_path / "pairs", n_train=4, n_val=1, size=16, split_dirs=True)
    (root / "B" / "train" / "0002.png").rename(root / "B" / "train" / "x.png")
    dm = PairedImageDataModule(str(root), image_size=SIZE, load_size=LOAD)
    with pytest.raises(DataError) as e:
        dm.setup()
    assert str(e.value) == (
        f"unmatched pairs: 1 in {root}/A/train have no match in {root}/B/train (0002); "
        f"1 in {root}/B/train have no match in {root}/A/train (x): "
        "give each A image and its B image the same file name"
    )
    with pytest.raises(DataError, match=r"nothing does not exist: put A\|B side-by-side images in"):
        PairedImageDataModule(str(tmp_path / "nothing")).setup()


def test_fashion_mnist_domains(fashion_root: Path, no_system_dir: str) -> None:
    # fashion_root: 64 train + 32 test images with labels i % 10.
    dm = FashionMNISTDomainsDataModule(str(fashion_root), system_dir=no_system_dir, download=False, batch_size=2)
    dm.prepare_data()
    dm.setup()
    for split, n in (("train", 64), ("val", 32)):
        a, b = dm.source_indices["A", split], dm.source_indices["B", split]
        assert (a < n // 2).all() and (b >= n // 2).all() and set(a.tolist()).isdisjoint(b.tolist())
        assert ((a % 10) == 7).all() and ((b % 10) == 9).all()
        labels_a = {int(dm.domain_dataset("A", split)[i][1]) for i in range(len(a))}
        labels_b = {int(dm.domain_dataset("B", split)[i][1]) for i in range(len(b))}
        assert labels_a == {7} and labels_b == {9}
    assert len(dm.train_set) == 3  # 7, 17, 27 / 39, 49, 59
    check_pair_batch(next(iter(dm.train_dataloader())), 2, 1, 32)
    assert len(dm.eval_dataset("val")) == len(dm.source_indices["B", "val"])
    with pytest.raises(ConfigError, match="class id 0-9"):
        FashionMNISTDomainsDataModule(str(fashion_root), class_a=10)


def test_safe_extract_refuses_paths_outside_the_target(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ok/trainA/a.txt", "fine")
        z.writestr("../escaped.txt", "bad")
    target = tmp_path / "target"
    target.mkdir()
    with zipfile.ZipFile(archive) as z, pytest.raises(ValueError, match="unsafe path"):
        safe_extract(z, target)
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize(
    "name",
    [
        "horse2zebra",
        "mini_pix2pix",
        "facades",
        "facades_unpaired",
        "fmnist_domains",
        "fmnist_edges",
        "unpaired",
        "paired",
        "image_folder",
    ],
)
def test_data_configs_compose(name: str) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="train", overrides=[f"data={name}"])
    data = cfg.data
    # Unlabelled images select Inception FID/IS by themselves; the Fashion-MNIST tasks have a labelled evaluator.
    extractor = cfg.metrics.evaluation.extractor._target_
    assert extractor == (
        "ganzoo.metrics.ClassifierFeatures" if name.startswith("fmnist") else "ganzoo.metrics.InceptionFeatures"
    )
    assert data.name.replace("_", "").isalnum()
    assert data._target_.startswith("ganzoo.data.")
    if name in ("horse2zebra", "mini_pix2pix", "facades", "facades_unpaired"):
        assert data.name == name and data.data_dir == f"{cfg.paths.data_dir}/{name}"
        assert data.batch_size == 1 and data.load_size == 286
    if name == "fmnist_edges":
        assert data.data_dir == cfg.paths.data_dir and data.direction == "AtoB"
        assert (data.image_size, data.channels, data.batch_size, data.flip) == (32, 1, 32, False)


def test_run_config_of_an_older_checkpoint_builds_the_moved_fashion_mnist_domains(
    fashion_root: Path, no_system_dir: str
) -> None:
    from hydra.utils import instantiate

    from ganzoo.checkpoint import with_current_targets

    # The data entry of a run config as checkpoints recorded it when the class lived in ganzoo.data.unpaired.
    recorded = {
        "data": {
            "_target_": "ganzoo.data.unpaired.FashionMNISTDomainsDataModule",
            "data_dir": str(fashion_root),
            "system_dir": no_system_dir,
            "class_a": 1,
            "download": False,
        },
        "model": {"_target_": "ganzoo.models.CycleGAN"},
    }
    current = with_current_targets(recorded)
    assert current["model"] == recorded["model"]
    data = instantiate(current["data"])
    assert isinstance(data, FashionMNISTDomainsDataModule) and data.class_a == 1
    data.setup()
    assert len(data.domain_dataset("A", "val")) > 0
