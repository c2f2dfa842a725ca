"""DiffAugment: each op as the paper defines it, drawn per image from the reseedable stream, differentiable."""

from __future__ import annotations

import pytest
import torch

from ganzoo.augment import DiffAugment, parse_policy
from ganzoo.errors import ConfigError

CPU = torch.device("cpu")


def images(n: int = 8, channels: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    # Away from zero, so the zeros that translation and cutout write are theirs.
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, channels, size, size, generator=g) * 0.9 + 0.1) * torch.where(
        torch.rand(n, channels, size, size, generator=g) < 0.5, -1.0, 1.0
    )


def test_policy_is_parsed_in_the_papers_order_and_unknown_ops_are_named() -> None:
    assert parse_policy("cutout, color") == ("color", "cutout")
    assert parse_policy(["translation"]) == ("translation",)
    with pytest.raises(ConfigError, match=r"model\.augment_options\.policy='colour'.*\['colour'\].*color,translation"):
        parse_policy("colour")
    with pytest.raises(ConfigError, match="unknown ops"):
        parse_policy("")


def test_translation_shifts_each_image_by_whole_pixels_within_an_eighth_and_fills_zeros() -> None:
    x = images(32, size=16)
    aug = DiffAugment("translation")
    aug.reseed(1, CPU)
    y = aug(x)
    shifts = set()
    for item, out in zip(x, y, strict=True):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                framed = torch.nn.functional.pad(item, (2, 2, 2, 2))
                expected = framed[:, 2 + dy : 2 + dy + 16, 2 + dx : 2 + dx + 16]
                if torch.equal(out, expected):
                    matches.append((dy, dx))
        assert len(matches) == 1  # 16 / 8 = 2 pixels at most
        shifts.add(matches[0])
    assert len(shifts) > 5  # drawn per image


def test_cutout_zeroes_one_square_of_half_the_side_per_image() -> None:
    x = images(32, channels=3, size=16)
    aug = DiffAugment("cutout")
    aug.reseed(2, CPU)
    y = aug(x)
    zeros = (y == 0).all(dim=1)
    assert torch.equal(y[~zeros.unsqueeze(1).expand_as(y)], x[~zeros.unsqueeze(1).expand_as(x)])
    corners = set()
    for mask in zeros:
        rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
        # A full rectangle, at most 8 x 8 (clipped at the border), centred inside the image.
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8 and int(mask.sum()) == len(rows) * len(cols)
        corners.add((int(rows.min()), int(cols.min())))
    assert len(corners) > 10


def test_color_is_per_image_brightness_saturation_and_contrast() -> None:
    x = images(64, channels=3)
    aug = DiffAugment("color")
    aug.reseed(3, CPU)
    y = aug(x)
    # Each image is a x (image - its mean) + its mean + b with one factor per image: the contrast factor lies in
    # [0.5, 1.5] and the saturation factor in [0, 2], so the spread changes at most 3-fold, and items differ.
    ratio = (y - y.mean(dim=(1, 2, 3), keepdim=True)).std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert (ratio <= 3.01).all() and ratio.std() > 0.1
    shift = y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.5 + 1e-5 and shift.std() > 0.1  # brightness in [-0.5, 0.5]
    grey = images(16, channels=1)
    out = aug(grey)
    centred_in, centred_out = grey - grey.mean(dim=(2, 3), keepdim=True), out - out.mean(dim=(2, 3), keepdim=True)
    # One grey channel: saturation does nothing, contrast scales around the mean by one factor in [0.5, 1.5].
    factor = (centred_out * centred_in).sum(dim=(1, 2, 3)) / (centred_in**2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(centred_out, centred_in * factor.view(-1, 1, 1, 1), atol=1e-5, rtol=1e-5)
    assert ((factor >= 0.5) & (factor <= 1.5)).all()


def test_the_images_of_a_stacked_pair_get_the_same_transform() -> None:
    single = images(8, channels=3, seed=4)
    pair = torch.cat([single, single], dim=1)
    aug = DiffAugment()
    aug.reseed(5, CPU)
    out = aug(pair, image_channels=3)
    assert torch.equal(out[:, :3], out[:, 3:])
    aug.reseed(5, CPU)
    # And the colour statistics are per image, not over the stack: the pair's halves equal the lone image's.
    assert torch.equal(out[:, :3], aug(single))


def test_the_stream_reproduces_draws_and_differs_between_seeds() -> None:
    x = images()
    aug = DiffAugment()
    aug.reseed(7, CPU)
    first = aug(x)
    aug.reseed(7, CPU)
    assert torch.equal(aug(x), first)
    aug.reseed(8, CPU)
    assert not torch.equal(aug(x), first)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout"])
def test_gradients_flow_through_every_op(policy: str) -> None:
    aug = DiffAugment(policy)
    x = images(3, channels=3, size=8).double().requires_grad_(True)

    def augmented(inputs: torch.Tensor) -> torch.Tensor:
        aug.reseed(11, CPU)  # the same draws at every call of gradcheck
        return aug(inputs)

    assert torch.autograd.gradcheck(augmented, (x,))
    augmented(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
