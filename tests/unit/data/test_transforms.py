import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.data.transforms import (
    CropParams,
    ImageTransform,
    ResizeCropTransform,
    build_resize_crop_transform,
    build_transform,
    center_crop,
    random_crop,
    resize_short_side,
    resize_square,
    to_channels,
)
from ganzoo.errors import ConfigError
from ganzoo.images import from_uint8


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


def _photo(height: int = 30, width: int = 44, seed: int = 0) -> torch.Tensor:
    """A random uint8 RGB image (3, height, width), not square."""
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_resize_crop_stretches_to_load_size_then_crops_and_flips_where_drawn():
    x = _photo()
    transform = build_resize_crop_transform(16, 3, 20, train=True, flip=True)
    assert transform.random_crop and transform.flip
    stretched = resize_square(x, 20)  # the aspect ratio is not kept: 30x44 -> 20x20
    seen = set()
    for seed in range(12):
        params = transform.draw(seed, 20, 20)
        assert 0 <= params.top <= 4 and 0 <= params.left <= 4
        window = stretched[:, params.top : params.top + 16, params.left : params.left + 16]
        expected = from_uint8(window.flip(-1) if params.flip else window)
        assert torch.equal(transform(x, seed), expected)
        seen.add(params)
    assert len({p.flip for p in seen}) == 2 and len({(p.top, p.left) for p in seen}) > 3


def test_resize_crop_without_augmentation_stretches_straight_to_image_size():
    x = _photo()
    expected = from_uint8(resize_square(x, 16))
    evaluation = build_resize_crop_transform(16, 3, 20, train=False, flip=True)
    assert not evaluation.is_random and evaluation.draw(5, 16, 16) == CropParams()
    assert torch.equal(evaluation(x, 5), expected)
    # The deterministic view of the train transform is the same pipeline, not a center crop of the 20x20 image.
    assert torch.equal(build_resize_crop_transform(16, 3, 20, train=True, flip=True).deterministic()(x), expected)
    # load_size == image_size leaves nothing to crop: only the flip is random.
    flip_only = build_resize_crop_transform(16, 3, 16, train=True, flip=True)
    assert not flip_only.random_crop and flip_only.flip
    assert {torch.equal(flip_only(x, s), expected) for s in range(8)} == {True, False}


def test_resize_crop_converts_channels_and_is_a_function_of_the_seed():
    grey = _photo()[:1]
    transform = ResizeCropTransform(8, 3, 12, random_crop=True, flip=True)
    out = transform(grey, 3)
    assert out.shape == (3, 8, 8) and out.dtype == torch.float32
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert torch.equal(transform(grey, 3), out)
    # Without a seed the global RNG decides, reproducibly under a fixed global seed.
    torch.manual_seed(0)
    first = [transform(grey) for _ in range(4)]
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(first, [transform(grey) for _ in range(4)], strict=True))


def test_pair_gets_the_crop_and_flip_each_image_would_get_alone():
    a, b = _photo(seed=1), _photo(seed=2)
    transform = build_resize_crop_transform(16, 3, 24, train=True, flip=True)
    for seed in range(6):
        pa, pb = transform.pair(a, b, seed)
        assert torch.equal(pa, transform(a, seed)) and torch.equal(pb, transform(b, seed))
    # A short-side resize keeps the aspect ratio, so differently shaped images cannot share a crop.
    short_side = ImageTransform(16, 3, load_size=20, random_crop=True)
    with pytest.raises(ValueError, match="differ in size after resizing"):
        short_side.pair(_photo(30, 44), _photo(44, 30), 0)


def test_short_side_transform_crops_the_drawn_window_of_the_resized_image():
    x = _photo()
    transform = build_transform(16, 3, train=True, flip=True, load_size=20)
    resized = resize_short_side(x, 20)  # 20 x 29: the aspect ratio is kept
    assert resized.shape == (3, 20, 29)
    for seed in range(8):
        params = transform.draw(seed, 20, 29)
        window = resized[:, params.top : params.top + 16, params.left : params.left + 16]
        assert torch.equal(transform(x, seed), from_uint8(window.flip(-1) if params.flip else window))
    assert torch.equal(transform.deterministic()(x), from_uint8(center_crop(resized, 16)))
    with pytest.raises(ValueError, match="a random crop needs load_size"):
        ImageTransform(16, 3, random_crop=True)
