import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.data.transforms import (
    build_transform,
    center_crop,
    random_crop,
    resize_short_side,
    resize_square,
    to_channels,
)
from ganzoo.errors import ConfigError


def test_grey_to_rgb_repeats_the_plane():
    grey = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    rgb = to_channels(grey, 3)
    assert rgb.shape == (5, 3, 8, 8)
    assert torch.equal(rgb[:, 0], grey[:, 0]) and torch.equal(rgb[:, 2], grey[:, 0])


def test_rgb_to_grey_matches_pil_luminance():
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb, "RGB").convert("L")).astype(int)
    got = to_channels(torch.from_numpy(rgb).permute(2, 0, 1), 1)
    assert got.shape == (1, 16, 16) and got.dtype == torch.uint8
    assert np.abs(got[0].numpy().astype(int) - expected).max() <= 1


def test_unsupported_channel_count():
    with pytest.raises(ConfigError, match="set channels to 1 or 3"):
        to_channels(torch.zeros(4, 5, 5, dtype=torch.uint8), 3)


def test_resize_square_batched_and_chunked(monkeypatch):
    import ganzoo.data.transforms as t

    x = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    whole = resize_square(x, 16)
    monkeypatch.setattr(t, "_RESIZE_CHUNK", 3)
    chunked = resize_square(x, 16)
    assert whole.shape == (10, 3, 16, 16) and whole.dtype == torch.uint8
    assert torch.equal(whole, chunked)
    assert resize_square(x, 32) is x


def test_constant_image_survives_resize_exactly():
    x = torch.full((1, 3, 28, 28), 200, dtype=torch.uint8)
    assert (resize_square(x, 64) == 200).all()
    assert (resize_square(x, 7) == 200).all()


def test_short_side_resize_keeps_aspect_and_crops():
    x = torch.randint(0, 256, (3, 40, 80), dtype=torch.uint8)
    y = resize_short_side(x, 20)
    assert y.shape == (3, 20, 40)
    assert center_crop(y, 20).shape == (3, 20, 20)
    assert torch.equal(center_crop(y, 20), y[:, :, 10:30])
    torch.manual_seed(0)
    crops = {random_crop(y, 20)[0, 0, 0].item() for _ in range(30)}
    assert len(crops) > 1, "random crops should move"


def test_build_transform_train_vs_eval():
    x = torch.arange(3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(3, 8, 8)
    ev = build_transform(8, 3, train=False, flip=True)
    assert not ev.flip and not ev.random_crop
    out = ev(x)
    assert out.dtype == torch.float32 and out.shape == (3, 8, 8)
    assert torch.equal(out.add(1).mul(127.5).round().to(torch.uint8), x)
    tr = build_transform(8, 3, train=True, flip=True, load_size=10)
    assert tr.flip and tr.random_crop
    torch.manual_seed(0)
    outs = [tr(x) for _ in range(20)]
    assert all(o.shape == (3, 8, 8) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
