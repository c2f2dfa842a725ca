"""``python -m ganzoo.sample``: archives of generated images from a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import decode_png, read_file

import ganzoo
from ganzoo.checkpoint import load_model
from ganzoo.images import from_uint8, to_uint8
from tests.conftest import EntryPointRun, run_cli

EntryPoint = Callable[..., EntryPointRun]


@pytest.fixture(scope="module")
def checkpoint(dcgan_smoke_run: Path) -> Path:
    return dcgan_smoke_run / "checkpoints" / "last.ckpt"


def sample(entry_point: EntryPoint, *overrides: str) -> None:
    """The body of ``python -m ganzoo.sample <overrides>``, run in this process; it must succeed."""
    run = entry_point("sample", *overrides)
    assert run.code == 0, run.err[-3000:]


def test_sample_writes_uint8_nchw_and_grid(checkpoint: Path, tmp_path: Path, entry_point: EntryPoint) -> None:
    out, grid = tmp_path / "out" / "samples.npz", tmp_path / "grid.png"
    run_cli("sample", f"ckpt={checkpoint}", "n=70", "batch_size=32", f"out={out}", f"grid={grid}", "grid_n=16")
    archive = np.load(out)
    assert archive.files == ["x"]  # DCGAN is unconditional: no labels
    x = archive["x"]
    assert x.dtype == np.uint8 and x.shape == (70, 1, 32, 32)
    assert x.std() > 0  # not a constant image
    assert decode_png(read_file(str(grid))).shape == (1, 4 * 32 + 5 * 2, 4 * 32 + 5 * 2)

    # Same seed, same images, whatever the batches; and they are what the model generates from the seed's latents.
    again = tmp_path / "again.npz"
    sample(entry_point, f"ckpt={checkpoint}", "n=70", "batch_size=70", f"out={again}")
    assert np.array_equal(np.load(again)["x"], x)
    expected = to_uint8(ganzoo.load(checkpoint).generate(70, seed=0)).numpy()  # the Python API's seed=0
    assert np.abs(expected.astype(int) - x.astype(int)).max() <= 1
    model = load_model(checkpoint)
    z = model.sample_latent(70, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(to_uint8(model.generate(z=z)).numpy(), expected)


def test_sample_rejects_classes_for_unconditional_model(
    checkpoint: Path, tmp_path: Path, entry_point: EntryPoint
) -> None:
    run = entry_point("sample", f"ckpt={checkpoint}", "n=4", "classes=[1,2]", f"out={tmp_path / 'x.npz'}")
    assert "not class-conditional" in run.error_line()


def test_sample_takes_reference_generators_and_refuses_translators(tmp_path: Path, entry_point: EntryPoint) -> None:
    from tests.builders import randomise
    from tests.references.cyclegan import RefGenerator, save_like_reference
    from tests.references.dcgan import reference_netG

    netg = tmp_path / "netG_epoch_24.pth"
    torch.save(randomise(reference_netG(nz=8, ngf=4, nc=1), std=0.05).state_dict(), netg)
    out = tmp_path / "dcgan.npz"
    sample(entry_point, f"ckpt={netg}", "n=5", f"out={out}", "seed=2")
    assert np.array_equal(np.load(out)["x"], to_uint8(ganzoo.load(netg).generate(5, seed=2)).numpy())

    # The command itself: nothing on stderr but the one line.
    official = save_like_reference(RefGenerator(3, 3, ngf=4, blocks=1), tmp_path / "latest_net_G_A.pth")
    proc = run_cli("sample", f"ckpt={official}", "n=4", f"out={tmp_path / 'x.npz'}", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: ckpt={official} is a translation model (OneWayTranslator), it translates images instead of "
        f"sampling them: use python -m ganzoo.translate ckpt={official} input=<folder> output=<folder>"
    ]
    assert not (tmp_path / "x.npz").exists()


def test_uint8_round_trip() -> None:
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = from_uint8(u)
    assert x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), u)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))
