"""Best-effort dataset downloads that fail fast when there is no network.

Also the command ``python -m ganzoo.data.download <name> [--data-dir DIR] [--url URL]``, which fetches one of the
official CycleGAN or pix2pix datasets (see :data:`DATASETS`) into ``<data_dir>/<name>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlparse

log = logging.getLogger(__name__)

#: Seconds a download may wait on one socket operation before giving up.
DOWNLOAD_TIMEOUT_S = 10.0


def try_download(fetch: Callable[[], object], what: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bool:
    """Call ``fetch()`` (e.g. a torchvision dataset with ``download=True``); True when it succeeded.

    Without a default socket timeout an unreachable mirror can stall urllib for
    minutes, so one is set for the duration of the call and then restored. Any
    failure (no network, mirror down, bad checksum) is logged and reported as False;
    the caller then raises a DataError that lists the offline remedies.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        fetch()
        return True
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError, ...
        log.warning("could not download %s: %s", what, e)
        return False
    finally:
        socket.setdefaulttimeout(previous)


#: Where the official CycleGAN script (junyanz/pytorch-CycleGAN-and-pix2pix, datasets/download_cyclegan_dataset.sh)
#: and pix2pix script (datasets/download_pix2pix_dataset.sh) download their archives from.
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"

#: The kinds of archive the official scripts download, and the layouts of what they unpack.
ArchiveKind = Literal["zip", "tar.gz"]
Layout = Literal["paired", "unpaired", "images"]

#: What the unpacked folder of each layout holds (named in the error when a download fails).
PAIRED_FOLDERS = ("train", "val")
UNPAIRED_FOLDERS = ("trainA", "trainB", "testA", "testB")

# Cityscapes' license forbids redistribution: both official scripts refuse it and explain how to build it.
_CITYSCAPES_HOWTO = (
    "cityscapes cannot be redistributed (license): download gtFine_trainvaltest.zip and "
    "leftImg8bit_trainvaltest.zip from https://cityscapes-dataset.com and convert them with the official "
    "datasets/prepare_cityscapes_dataset.py --output_dir {target}"
)


@dataclass(frozen=True)
class OfficialDataset:
    """One dataset of the official download scripts, as ``python -m ganzoo.data.download <name>`` fetches it.

    ``name`` is the download name, the name of its ``data=<name>`` config and of its folder under the data
    directory. The pix2pix sets keep their official names; the CycleGAN copies of facades, maps and cityscapes,
    whose names pix2pix took, are ``<name>_unpaired``.

    Attributes:
        name: download name = data config name = folder under ``data_dir``.
        url: the official archive; None when it is not distributed (see ``howto``).
        archive: ``zip`` (the CycleGAN sets) or ``tar.gz`` (the pix2pix sets).
        layout: ``paired`` (pix2pix: A|B side by side in train/, val/ or test/), ``unpaired`` (CycleGAN:
            trainA/, trainB/, testA/, testB/) or ``images`` (photos only, read as an image folder).
        folders: what the unpacked folder holds (a paired set's val may be test), named in the error when the
            download fails.
        howto: for a dataset without ``url``, how to build its folder (``{target}``: that folder).
    """

    name: str
    url: str | None
    archive: ArchiveKind
    layout: Layout
    folders: tuple[str, ...]
    howto: str | None = None

    @property
    def archive_name(self) -> str:
        """The archive's file name, e.g. ``facades.tar.gz`` (``<name>.<archive>`` without a url)."""
        return PurePosixPath(urlparse(self.url).path).name if self.url else f"{self.name}.{self.archive}"


def _cyclegan(
    name: str, layout: Layout = "unpaired", folders: tuple[str, ...] = UNPAIRED_FOLDERS, official: str = ""
) -> OfficialDataset:
    """A set of the CycleGAN script; ``official``: its name there when ganzoo renames it."""
    url = CYCLEGAN_URL.format(name=official or name)
    return OfficialDataset(name, url, "zip", layout, folders)


def _pix2pix(name: str) -> OfficialDataset:
    return OfficialDataset(name, PIX2PIX_URL.format(name=name), "tar.gz", "paired", PAIRED_FOLDERS)


#: Every dataset ``python -m ganzoo.data.download <name>`` knows, by name; each has a ``data=<name>`` config.
DATASETS: dict[str, OfficialDataset] = {
    dataset.name: dataset
    for dataset in (
        # The CycleGAN script's sets, in its order.
        _cyclegan("apple2orange"),
        _cyclegan("summer2winter_yosemite"),
        _cyclegan("horse2zebra"),
        _cyclegan("monet2photo"),
        _cyclegan("cezanne2photo"),
        _cyclegan("ukiyoe2photo"),
        _cyclegan("vangogh2photo"),
        _cyclegan("maps_unpaired", official="maps"),
        OfficialDataset("cityscapes_unpaired", None, "zip", "unpaired", UNPAIRED_FOLDERS, _CITYSCAPES_HOWTO),
        _cyclegan("facades_unpaired", official="facades"),
        _cyclegan("iphone2dslr_flower"),
        _cyclegan("ae_photos", "images", ("testA",)),
        _cyclegan("mini"),
        _cyclegan("mini_pix2pix", "paired", PAIRED_FOLDERS),
        _cyclegan("mini_colorization", "images", ("train", "test")),
        _cyclegan("grumpifycat"),
        # The pix2pix script's sets.
        OfficialDataset("cityscapes", None, "tar.gz", "paired", PAIRED_FOLDERS, _CITYSCAPES_HOWTO),
        _pix2pix("night2day"),
        _pix2pix("edges2handbags"),
        _pix2pix("edges2shoes"),
        _pix2pix("facades"),
        _pix2pix("maps"),
    )
}

_CHUNK = 1 << 20

# Top-level folders that belong to a dataset rather than wrap it: an archive holding just one of them is unpacked
# as the dataset folder itself, not as a wrapper around it.
_DATASET_SUBFOLDERS = {*PAIRED_FOLDERS, "test", *UNPAIRED_FOLDERS, "A", "B"}


def default_data_dir() -> Path:
    """``$GANZOO_DATA``, or ``./data`` (what ``paths.data_dir`` defaults to)."""
    return Path(os.environ.get("GANZOO_DATA") or "data")


def _inside(root: Path, name: str) -> bool:
    dest = (root / name).resolve()
    return dest == root or root in dest.parents


def safe_extract(archive: zipfile.ZipFile | tarfile.TarFile, target: Path) -> None:
    """Unpack ``archive`` into ``target``, refusing (ValueError) members that would land outside it, links, and
    in a tar anything but plain files and folders (devices, fifos). Nothing is written when a member is refused."""
    root = target.resolve()
    if isinstance(archive, zipfile.ZipFile):
        for info in archive.infolist():
            if stat.S_ISLNK(info.external_attr >> 16) or not _inside(root, info.filename):
                raise ValueError(f"unsafe path {info.filename!r} in the archive")
        archive.extractall(root)
        return
    members = archive.getmembers()
    for member in members:
        if not (member.isfile() or member.isdir()) or not _inside(root, member.name):
            raise ValueError(f"unsafe path {member.name!r} in the archive")
    if hasattr(tarfile, "data_filter"):
        # Also drops set-uid bits and odd permissions (Python >= 3.10.12 / 3.11.4).
        archive.extractall(root, members=members, filter="data")
    else:  # the checks above already refused every member the data filter would
        archive.extractall(root, members=members)


def fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` (via ``dest.part``); every socket operation times out after ``timeout`` s.

    Any URL urllib opens works, ``file://`` included (a copy fetched elsewhere)."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)


def unpack(archive_path: Path, kind: ArchiveKind, dest: Path) -> None:
    """Unpack the ``kind`` archive ``archive_path`` safely (see :func:`safe_extract`) into ``dest``."""
    if kind == "zip":
        with zipfile.ZipFile(archive_path) as archive:
            safe_extract(archive, dest)
    else:
        with tarfile.open(archive_path, "r:gz") as archive:
            safe_extract(archive, dest)


def download_dataset(name: str, data_dir: Path, timeout: float = DOWNLOAD_TIMEOUT_S, url: str | None = None) -> Path:
    """Fetch and unpack the official archive of dataset ``name`` (see :data:`DATASETS`) into ``data_dir/name``.

    ``url`` replaces the official address (a mirror, or ``file://`` for a copy fetched elsewhere); the archive
    must be of the official kind. The folder appears only once the archive is unpacked in full. Raises KeyError
    for an unknown name, ValueError for a dataset that is not distributed or an unsafe archive, and OSError,
    ``zipfile.BadZipFile`` or ``tarfile.TarError`` when the download or the archive fails.
    """
    dataset = DATASETS[name]
    source_url = url or dataset.url
    if source_url is None:
        raise ValueError(f"{name} is not distributed")
    target = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=data_dir) as tmp:
        archive_path = Path(tmp) / dataset.archive_name
        fetch(source_url, archive_path, timeout)
        unpacked = Path(tmp) / "unpacked"
        unpacked.mkdir()
        unpack(archive_path, dataset.archive, unpacked)
        # The official archives hold one folder (<official name>/); anything else is taken as the dataset itself.
        entries = [p for p in unpacked.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        single = len(entries) == 1 and entries[0].is_dir() and entries[0].name not in _DATASET_SUBFOLDERS
        (entries[0] if single else unpacked).replace(target)
    return target


def _folders(target: Path, dataset: OfficialDataset) -> str:
    """``target/a, b and c``: the folders the unpacked dataset holds, for messages."""
    names = list(dataset.folders)
    listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    return f"{target}/{listed}" + (" (or test)" if dataset.layout == "paired" else "")


def main(argv: list[str] | None = None) -> int:
    """``python -m ganzoo.data.download <name> [--data-dir DIR] [--url URL]``: fetch an official dataset."""
    parser = argparse.ArgumentParser(
        # The name the user typed: the console script or the module form.
        prog="ganzoo-download" if Path(sys.argv[0]).name == "ganzoo-download" else "python -m ganzoo.data.download",
        description="Download an official CycleGAN dataset (trainA, trainB, testA, testB) or pix2pix dataset "
        "(train, val: A|B side by side) into <data_dir>/<name>.",
    )
    parser.add_argument("name", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $GANZOO_DATA or ./data")
    parser.add_argument("--timeout", type=float, default=DOWNLOAD_TIMEOUT_S, help="seconds per socket operation")
    parser.add_argument(
        "--url",
        default=None,
        help="fetch the archive from here instead of the official address: a mirror, or file:///path/to/<archive> "
        "for a copy fetched elsewhere",
    )
    args = parser.parse_args(argv)
    name: str = args.name
    data_dir: Path = args.data_dir if args.data_dir is not None else default_data_dir()
    target = data_dir / name
    dataset = DATASETS.get(name)
    if dataset is None:
        print(f"error: unknown dataset {name!r}: choose one of {', '.join(DATASETS)}", file=sys.stderr)
        return 1
    url = args.url or dataset.url
    if url is None:
        assert dataset.howto is not None
        print(f"error: {dataset.howto.format(target=target)}", file=sys.stderr)
        return 1
    if target.exists() and any(target.iterdir()):
        print(f"{target} already exists: nothing to do (remove it to download {name} again)")
        return 0
    try:
        download_dataset(name, data_dir, args.timeout, url)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, ValueError) as e:  # URLError and timeouts are OSErrors
        reason = " ".join(str(e).split()) or type(e).__name__
        unpack_verb = "unzip" if dataset.archive == "zip" else "unpack"
        print(
            f"error: could not download {name} from {url} ({reason}): fetch {dataset.archive_name} elsewhere and "
            f"pass it as --url file:///<path>/{dataset.archive_name}, or {unpack_verb} it so that "
            f"{_folders(target, dataset)} exist",
            file=sys.stderr,
        )
        return 1
    print(f"{name} is in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
