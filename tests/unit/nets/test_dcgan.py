"""DCGAN networks: shapes at every supported size, the reference's init and layer layout."""

from __future__ import annotations

import pytest
import torch

from ganzoo.errors import ConfigError
from ganzoo.nets.dcgan import DCGANDiscriminator, DCGANGenerator


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(size: int, channels: int) -> None:
    g = DCGANGenerator(image_size=size, channels=channels, nz=16, ngf=8)
    d = DCGANDiscriminator(image_size=size, channels=channels, ndf=8)
    images = g(torch.randn(5, 16))
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert g(torch.randn(5, 16, 1, 1)).shape == images.shape
    assert d(images).shape == (5,)


@pytest.mark.parametrize("size", [0, 4, 48, 100])
def test_unsupported_size_is_a_config_error(size: int) -> None:
    with pytest.raises(ConfigError, match="image_size = 4 \\* 2\\^k"):
        DCGANGenerator(image_size=size)


def test_init_matches_dcgan_paper() -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(image_size=64, channels=3, nz=100, ngf=64)
    conv = g.main[3].weight
    bn = g.main[1]
    assert abs(conv.mean()) < 1e-3 and abs(conv.std() - 0.02) < 1e-3
    assert abs(bn.weight.mean() - 1) < 0.01 and abs(bn.weight.std() - 0.02) < 0.01 and torch.all(bn.bias == 0)


def test_reference_layout_at_64px() -> None:
    """pytorch/examples' dcgan at 64 px: 5 transposed convs ngf*8 -> ngf*4 -> ngf*2 -> ngf -> nc, no biases,
    BN after all but the last; D mirrors it; parameter keys under ``main.<index>``."""
    g, d = DCGANGenerator(64, 3, 100, 64), DCGANDiscriminator(64, 3, 64)
    g_keys = {k: tuple(v.shape) for k, v in g.state_dict().items() if k.endswith("weight")}
    assert g_keys == {
        "main.0.weight": (100, 512, 4, 4),
        "main.1.weight": (512,),
        "main.3.weight": (512, 256, 4, 4),
        "main.4.weight": (256,),
        "main.6.weight": (256, 128, 4, 4),
        "main.7.weight": (128,),
        "main.9.weight": (128, 64, 4, 4),
        "main.10.weight": (64,),
        "main.12.weight": (64, 3, 4, 4),
    }
    d_keys = {k: tuple(v.shape) for k, v in d.state_dict().items() if k.endswith("weight")}
    assert d_keys == {
        "main.0.weight": (64, 3, 4, 4),
        "main.2.weight": (128, 64, 4, 4),
        "main.3.weight": (128,),
        "main.5.weight": (256, 128, 4, 4),
        "main.6.weight": (256,),
        "main.8.weight": (512, 256, 4, 4),
        "main.9.weight": (512,),
        "main.11.weight": (1, 512, 4, 4),
    }
    assert not any(k.endswith("bias") and "main.0" in k for k in g.state_dict())
    assert sum(p.numel() for p in g.parameters()) == 3_576_704
    assert sum(p.numel() for p in d.parameters()) == 2_765_568
