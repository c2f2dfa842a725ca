"""Best-effort dataset downloads that fail fast when there is no network.

Also the command ``python -m ganzoo.data.download <name> [--data-dir DIR]``, which fetches one of the
official CycleGAN datasets (see :data:`CYCLEGAN_DATASETS`) into ``<data_dir>/<name>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

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


#: The datasets of the official CycleGAN download script (junyanz/pytorch-CycleGAN-and-pix2pix,
#: datasets/download_cyclegan_dataset.sh), fetched by ``python -m ganzoo.data.download <name>``.
CYCLEGAN_DATASETS = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "ae_photos",
    "mini",
    "mini_pix2pix",
    "mini_colorization",
    "grumpifycat",
)

#: Where the official script downloads them from.
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"

_CHUNK = 1 << 20


def default_data_dir() -> Path:
    """``$GANZOO_DATA``, or ``./data`` (what ``paths.data_dir`` defaults to)."""
    return Path(os.environ.get("GANZOO_DATA") or "data")


def safe_extract(archive: zipfile.ZipFile, target: Path) -> None:
    """Unpack ``archive`` into ``target``, refusing members that would land outside it (or are links)."""
    root = target.resolve()
    for member in archive.infolist():
        dest = (root / member.filename).resolve()
        is_link = stat.S_ISLNK(member.external_attr >> 16)
        if is_link or (dest != root and root not in dest.parents):
            raise ValueError(f"unsafe path {member.filename!r} in the archive")
    archive.extractall(root)


def fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` (via ``dest.part``); every socket operation times out after ``timeout`` s."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)


def download_cyclegan_dataset(name: str, data_dir: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch and unpack the official ``<name>.zip`` into ``data_dir/name`` (trainA, trainB, testA, testB)."""
    target = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=data_dir) as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        fetch(CYCLEGAN_URL.format(name=name), zip_path, timeout)
        unpacked = Path(tmp) / "unpacked"
        unpacked.mkdir()
        with zipfile.ZipFile(zip_path) as archive:
            safe_extract(archive, unpacked)
        # The official zips hold one folder <name>/; anything else is taken as the dataset folder itself.
        entries = [p for p in unpacked.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        source.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m ganzoo.data.download <name> [--data-dir DIR]``: fetch an official CycleGAN dataset."""
    parser = argparse.ArgumentParser(
        # The name the user typed: the console script or the module form.
        prog="ganzoo-download" if Path(sys.argv[0]).name == "ganzoo-download" else "python -m ganzoo.data.download",
        description="Download an official CycleGAN dataset into <data_dir>/<name> (trainA, trainB, testA, testB).",
    )
    parser.add_argument("name", help=f"one of {', '.join(CYCLEGAN_DATASETS)}")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $GANZOO_DATA or ./data")
    parser.add_argument("--timeout", type=float, default=DOWNLOAD_TIMEOUT_S, help="seconds per socket operation")
    args = parser.parse_args(argv)
    name: str = args.name
    data_dir: Path = args.data_dir if args.data_dir is not None else default_data_dir()
    target = data_dir / name
    if name not in CYCLEGAN_DATASETS:
        print(f"error: unknown dataset {name!r}: choose one of {', '.join(CYCLEGAN_DATASETS)}", file=sys.stderr)
        return 1
    if name == "cityscapes":
        print(
            "error: cityscapes cannot be redistributed (license): download gtFine_trainvaltest.zip and "
            "leftImg8bit_trainvaltest.zip from https://cityscapes-dataset.com and convert them with the official "
            f"datasets/prepare_cityscapes_dataset.py into {target}",
            file=sys.stderr,
        )
        return 1
    if target.exists() and any(target.iterdir()):
        print(f"{target} already exists: nothing to do (remove it to download {name} again)")
        return 0
    url = CYCLEGAN_URL.format(name=name)
    try:
        download_cyclegan_dataset(name, data_dir, args.timeout)
    except (OSError, zipfile.BadZipFile, ValueError) as e:  # URLError and timeouts are OSErrors
        reason = " ".join(str(e).split()) or type(e).__name__
        print(
            f"error: could not download {name} from {url} ({reason}): fetch {name}.zip elsewhere and unzip it so that "
            f"{target}/trainA, trainB, testA and testB exist",
            file=sys.stderr,
        )
        return 1
    print(f"{name} is in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
