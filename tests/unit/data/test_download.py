"""``python -m ganzoo.data.download``: the official archives, fetched offline from a local copy (a ``file://`` URL,
or a local HTTP server), unpacked safely into ``<data_dir>/<name>`` and read by the data config of that name."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganzoo.data.download import DATASETS, main, safe_extract
from ganzoo.data.paired import PairedImageDataModule
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from tests.data.writers import write_aligned_pairs, write_unpaired_folders


def tar_gz(path: Path, folder: Path, arcname: str) -> Path:
    """``path``: ``folder`` packed as ``arcname/...``, as the official pix2pix archives hold ``<name>/train...``."""
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=arcname)
    return path


def zip_folder(path: Path, folder: Path, arcname: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, f"{arcname}/{file.relative_to(folder).as_posix()}")
    return path


def tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A tar.gz holding a good file and ``member`` (which may be unsafe)."""
    with tarfile.open(path, "w:gz") as archive:
        good = tarfile.TarInfo("facades/train/ok.txt")
        good.size = 4
        archive.addfile(good, io.BytesIO(b"fine"))
        member.size = len(data) if member.isfile() else 0
        archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def unsafe_member(kind: str) -> tarfile.TarInfo:
    """A tar member that must not be unpacked: a path leaving the target, a link, or a device."""
    if kind == "parent":
        return tarfile.TarInfo("../escaped.txt")
    if kind == "absolute":
        return tarfile.TarInfo("/tmp/ganzoo-escaped.txt")
    member = tarfile.TarInfo(f"facades/train/{kind}")
    member.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}[kind]
    member.linkname = {"symlink": "../../../outside", "hardlink": "facades/train/ok.txt"}.get(kind, "")
    return member


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_dataset_has_an_archive_or_says_how_to_build_it() -> None:
    for name, dataset in DATASETS.items():
        assert dataset.name == name
        assert (dataset.url is None) == (dataset.howto is not None)
        assert dataset.url is None or dataset.url.endswith(f".{dataset.archive}")
    # The pix2pix sets keep their official names and archives; the CycleGAN sets that clash are renamed.
    assert DATASETS["facades"].url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    assert DATASETS["facades_unpaired"].url == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/facades.zip"
    assert DATASETS["maps_unpaired"].archive_name == "maps.zip"
    pix2pix = {"facades", "maps", "edges2shoes", "edges2handbags", "night2day", "cityscapes"}
    assert {n for n, d in DATASETS.items() if d.archive == "tar.gz"} == pix2pix
    # The layout each entry announces is the one its data config reads (tests/unit/conf/test_configs.py checks).
    assert {n for n, d in DATASETS.items() if d.layout == "paired"} == pix2pix | {"mini_pix2pix"}
    assert {n for n, d in DATASETS.items() if d.layout == "images"} == {"ae_photos", "mini_colorization"}


def test_a_pix2pix_tar_gz_is_unpacked_into_its_folder_and_read_as_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_aligned_pairs(tmp_path / "src" / "facades", n_train=3, n_val=2, size=16)
    archive = tar_gz(tmp_path / "facades.tar.gz", source, "facades")
    data_dir = tmp_path / "data"
    code, out, err = run(["facades", "--data-dir", str(data_dir), "--url", archive.as_uri()], capsys)
    assert (code, err) == (0, "")
    assert out.strip() == f"facades is in {data_dir / 'facades'}"
    assert sorted(p.name for p in data_dir.iterdir()) == ["facades"]  # no archive or temporary folder left
    assert sorted(p.name for p in (data_dir / "facades").iterdir()) == ["train", "val"]
    pairs = PairedImageDataModule(str(data_dir / "facades"), image_size=16, load_size=16)
    pairs.check_available()
    pairs.setup()
    assert len(pairs.train_set) == 3 and len(pairs.val_set) == 2
    a, b = pairs.val_set[0]
    assert (a + b).abs().max() <= 2 / 127.5  # A|B split back into the pair it was written as
    # A second call finds the folder and leaves it alone.
    code, out, _ = run(["facades", "--data-dir", str(data_dir), "--url", "file:///nonexistent.tar.gz"], capsys)
    assert code == 0 and "already exists: nothing to do" in out


def test_a_cyclegan_zip_of_a_renamed_set_lands_under_the_new_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_unpaired_folders(tmp_path / "src" / "facades", n_train_a=2, n_train_b=2, n_test_a=1, n_test_b=1)
    archive = zip_folder(tmp_path / "facades.zip", source, "facades")  # the official zip's folder is facades/
    data_dir = tmp_path / "data"
    code, _, err = run(["facades_unpaired", "--data-dir", str(data_dir), "--url", archive.as_uri()], capsys)
    assert (code, err) == (0, "")
    domains = UnpairedImageFolderDataModule(str(data_dir / "facades_unpaired"), image_size=16, load_size=16)
    domains.check_available()
    domains.setup()
    assert len(domains.domain_dataset("A", "train")) == 2


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on a free port serving ``tmp_path/www``: (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_over_http_and_a_missing_archive_is_one_line_with_the_fix(
    tmp_path: Path, http_folder: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, folder = http_folder
    source = write_aligned_pairs(tmp_path / "src" / "edges2shoes", n_train=2, n_val=1, size=8)
    tar_gz(folder / "edges2shoes.tar.gz", source, "edges2shoes")
    data_dir = tmp_path / "data"
    code, _, err = run(["edges2shoes", "--data-dir", str(data_dir), "--url", f"{base}/edges2shoes.tar.gz"], capsys)
    assert (code, err) == (0, "")
    assert len(list((data_dir / "edges2shoes" / "train").iterdir())) == 2

    code, out, err = run(["night2day", "--data-dir", str(data_dir), "--url", f"{base}/night2day.tar.gz"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: could not download night2day from {base}/night2day.tar.gz (HTTP Error 404")
    assert err.strip().endswith(
        "fetch night2day.tar.gz elsewhere and pass it as --url file:///<path>/night2day.tar.gz, or unpack it so that "
        f"{data_dir}/night2day/train and val (or test) exist"
    )
    assert not (data_dir / "night2day").exists()


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "hardlink", "device"])
def test_an_unsafe_tar_member_stops_the_download_and_writes_nothing(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    member = unsafe_member(kind)
    archive = tar_with(tmp_path / "facades.tar.gz", member, b"bad" if member.isfile() else b"")
    data_dir = tmp_path / "data"
    code, out, err = run(["facades", "--data-dir", str(data_dir), "--url", archive.as_uri()], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(
        f"error: could not download facades from {archive.as_uri()} (unsafe path {member.name!r} in the archive): "
        "fetch facades.tar.gz elsewhere"
    )
    assert sorted(p.name for p in data_dir.iterdir()) == []  # no dataset folder, no leftovers
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/ganzoo-escaped.txt").exists()
    # safe_extract itself refuses before writing anything, even the good member.
    target = tmp_path / "target"
    target.mkdir()
    with tarfile.open(archive) as opened, pytest.raises(ValueError, match="unsafe path"):
        safe_extract(opened, target)
    assert not any(target.iterdir())


def test_a_safe_tar_unpacks_with_plain_permissions(tmp_path: Path) -> None:
    member = tarfile.TarInfo("facades/val/setuid.txt")
    member.mode = 0o4777  # the data filter drops set-uid and group/other write bits where Python has it
    archive = tar_with(tmp_path / "ok.tar.gz", member, b"data")
    target = tmp_path / "target"
    target.mkdir()
    with tarfile.open(archive) as opened:
        safe_extract(opened, target)
    assert (target / "facades" / "train" / "ok.txt").read_bytes() == b"fine"
    written = target / "facades" / "val" / "setuid.txt"
    assert written.read_bytes() == b"data"
    if hasattr(tarfile, "data_filter"):
        assert not written.stat().st_mode & 0o4022


@pytest.mark.parametrize("name", ["cityscapes", "cityscapes_unpaired"])
def test_cityscapes_says_how_to_build_it(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([name, "--data-dir", str(tmp_path)], capsys)
    assert code == 1 and out == ""
    assert err == (
        "error: cityscapes cannot be redistributed (license): download gtFine_trainvaltest.zip and "
        "leftImg8bit_trainvaltest.zip from https://cityscapes-dataset.com and convert them with the official "
        f"datasets/prepare_cityscapes_dataset.py --output_dir {tmp_path / name}\n"
    )
    assert not any(tmp_path.iterdir())


def test_unknown_name_lists_every_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["facade"], capsys)
    assert code == 1
    assert err == f"error: unknown dataset 'facade': choose one of {', '.join(DATASETS)}\n"
    assert "facades_unpaired" in err and "edges2shoes" in err and "horse2zebra" in err
