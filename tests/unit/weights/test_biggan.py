"""BigGAN-PyTorch G.pth / G_ema.pth / D.pth load into ganzoo's BigGAN nets and give the reference's outputs.

The witness is :mod:`tests.references.biggan`, a functional re-implementation of the reference's eval forward
that reads the same state dicts by their BigGAN-PyTorch key names.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ganzoo.errors import CheckpointError
from ganzoo.nets.biggan import BigGANDiscriminator, BigGANGenerator
from ganzoo.nets.layers import ClassConditionalBatchNorm
from ganzoo.weights.biggan import discriminator_from_official, generator_from_official
from tests.references.biggan import (
    DConfig,
    GConfig,
    discriminator_forward,
    discriminator_state,
    generator_forward,
    generator_state,
    parse_attention,
    to_mybn,
)

# launch_cifar_ema.sh: 32 px, unshared class embeddings, no attention, CIFAR-10's classes.
CIFAR = GConfig(resolution=32, ch=4, dim_z=128, n_classes=10, shared=False, shared_dim=0, hier=False, attention="0")
# 64 px, shared (shared_dim 0 -> dim_z) without hier, attention at two resolutions, two tracked singular values.
I64 = GConfig(
    resolution=64, ch=4, dim_z=32, n_classes=3, shared=True, shared_dim=0, hier=False, attention="32_64", num_svs=2
)
# launch_BigGAN_bs256x8.sh (the published 138k checkpoint) at ch 4, not 96: hier splits dim_z 120 into 6 chunks of 20.
I128 = GConfig(
    resolution=128, ch=4, dim_z=120, n_classes=1000, shared=True, shared_dim=128, hier=True, attention="64", sn_eps=1e-6
)
D_CIFAR = DConfig(resolution=32, ch=4, n_classes=10, attention="0")
D64 = DConfig(resolution=64, ch=4, n_classes=3, attention="16", wide=False, num_svs=2)
D128 = DConfig(resolution=128, ch=8, n_classes=1000, attention="64", sn_eps=1e-6)


def run_config(sn_eps: float, bn_eps: float = 1e-5, **extra: object) -> dict[str, object]:
    """What BigGAN-PyTorch's train.py saves as state_dict.pth: counters, numpy best scores and the argparse config,
    into which train.py has put the activations as ``nn.ReLU`` modules (``utils.activation_dict``)."""
    config = {"SN_eps": sn_eps, "BN_eps": bn_eps, "num_G_SV_itrs": 1, "num_D_SV_itrs": 1, "G_attn": "64", "G_ch": 96}
    config.update(G_nl="relu", D_nl="ir", G_activation=torch.nn.ReLU(inplace=False), D_activation=torch.nn.ReLU(True))
    config.update(extra)
    return {"itr": 138000, "epoch": 3, "best_IS": np.float64(98.7), "best_FID": np.float32(8.7), "config": config}


def g_inputs(cfg: GConfig, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, cfg.final_dim_z, generator=gen), torch.randint(0, cfg.n_classes, (n,), generator=gen)


def assert_same_images(net: BigGANGenerator, state: dict[str, torch.Tensor], cfg: GConfig) -> None:
    z, y = g_inputs(cfg)
    with torch.no_grad():
        ours = net(z, y)
    ref = generator_forward(state, cfg, z, y)
    side = cfg.bottom_width * 2 ** len(cfg.out_channels)
    assert ours.shape == (len(z), cfg.channels, side, side)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    # Images that are mostly saturated would hide differences behind tanh.
    assert (ref.abs() < 0.99).float().mean() > 0.9


def assert_same_logits(net: BigGANDiscriminator, state: dict[str, torch.Tensor], cfg: DConfig) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, cfg.channels, cfg.resolution, cfg.resolution, generator=gen) * 2 - 1
    y = torch.randint(0, cfg.n_classes, (2,), generator=gen)
    with torch.no_grad():
        ours = net(x, y)
    torch.testing.assert_close(ours, discriminator_forward(state, cfg, x, y).squeeze(1), rtol=1e-5, atol=1e-5)


def attention_of(net: BigGANGenerator | BigGANDiscriminator, block_resolutions: list[int]) -> set[int]:
    """Resolutions whose block is followed by a self-attention layer."""
    return {r for r, layers in zip(block_resolutions, net.blocks, strict=True) if len(layers) == 2}


@pytest.mark.parametrize("cfg", [CIFAR, I64, I128], ids=["cifar32", "attn64", "imagenet128"])
def test_generator_matches_reference(tmp_path: Path, cfg: GConfig) -> None:
    state = generator_state(cfg)
    torch.save(state, tmp_path / "G_ema.pth")
    if cfg.sn_eps != 1e-12:
        torch.save(run_config(cfg.sn_eps, cfg.bn_eps), tmp_path / "state_dict.pth")
    net = generator_from_official(tmp_path / "G_ema.pth")
    assert not net.training
    assert_same_images(net, state, cfg)
    # The architecture was read off the tensors (and the run's config).
    assert (net.resolution, net.n_classes, net.hier, net.dim_z) == (
        cfg.resolution,
        cfg.n_classes,
        cfg.hier,
        cfg.final_dim_z,
    )
    assert net.blocks[0][0].conv1.weight.shape[1] == cfg.in_channels[0]
    assert attention_of(net, cfg.block_resolutions) == parse_attention(cfg.attention)
    assert net.linear.num_svs == cfg.num_svs and net.linear.eps == cfg.sn_eps
    if cfg.hier:
        assert (net.shared_dim, net.z_chunk_size) == (128, 20)


@pytest.mark.parametrize("cfg", [D_CIFAR, D64, D128], ids=["cifar32", "skinny64", "imagenet128"])
def test_discriminator_matches_reference(tmp_path: Path, cfg: DConfig) -> None:
    state = discriminator_state(cfg)
    torch.save(state, tmp_path / "D.pth")
    if cfg.sn_eps != 1e-12:
        torch.save(run_config(cfg.sn_eps), tmp_path / "state_dict.pth")
    net = discriminator_from_official(tmp_path / "D.pth")
    assert not net.training
    assert_same_logits(net, state, cfg)
    assert (net.resolution, net.n_classes) == (cfg.resolution, cfg.n_classes)
    assert net.blocks[0][0].conv2.weight.shape[0] == cfg.out_channels[0]
    assert (net.blocks[0][0].conv1.weight.shape[0] == cfg.out_channels[0]) == cfg.wide
    assert attention_of(net, cfg.block_resolutions) == parse_attention(cfg.attention)
    assert net.linear.num_svs == cfg.num_svs and net.linear.eps == cfg.sn_eps


def test_greyscale_and_bottom_width_are_read_off_the_weights() -> None:
    """ganzoo's own runs may save 1-channel nets; bottom_width sits in the linear layer's width."""
    cfg = dataclasses.replace(CIFAR, channels=1, bottom_width=2, dim_z=16)
    net = generator_from_official(generator_state(cfg))
    assert (net.channels, net.bottom_width) == (1, 2)
    assert_same_images(net, generator_state(cfg), cfg)
    d_cfg = dataclasses.replace(D_CIFAR, channels=1)
    assert_same_logits(discriminator_from_official(discriminator_state(d_cfg)), discriminator_state(d_cfg), d_cfg)


def test_bn_eps_comes_from_the_run_config_and_overrides_win(tmp_path: Path) -> None:
    """BN_eps only lives in state_dict.pth; it must reach the conditional BNs (not the output BN, fixed at 1e-5)."""
    cfg = dataclasses.replace(I64, bn_eps=1e-2)
    state = generator_state(cfg)
    torch.save(state, tmp_path / "G_best2.pth")
    torch.save(run_config(1e-8, bn_eps=1e-2), tmp_path / "state_dict_best2.pth")
    torch.save(run_config(1e-8, bn_eps=0.5), tmp_path / "state_dict.pth")  # another save's; the suffix picks best2
    assert_same_images(generator_from_official(tmp_path / "G_best2.pth"), state, cfg)
    plain = generator_from_official(state)  # no file, so no config: the default 1e-5
    z, y = g_inputs(cfg)
    with torch.no_grad():
        assert not torch.allclose(plain(z, y), generator_forward(state, cfg, z, y), atol=1e-4)
    assert_same_images(generator_from_official(state, bn_eps=1e-2), state, cfg)
    assert generator_from_official(tmp_path / "G_best2.pth", sn_eps=1e-3).linear.eps == 1e-3


class _Torch1Backend:
    """Pickles as PyTorch <= 1.1 pickled ``Module._backend``: a call of ``torch.nn.backends.thnn``'s function."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        from torch.nn.backends.thnn import _get_thnn_function_backend

        return _get_thnn_function_backend, ()


@pytest.mark.parametrize("torch1", [False, True], ids=["relu", "relu-pickled-by-torch1"])
def test_genuine_run_config_with_relu_modules_gives_its_epsilons(tmp_path: Path, torch1: bool) -> None:
    """A run trained with --BN_eps 1e-3 --SN_eps 1e-6: its state_dict.pth holds nn.ReLU modules in the config."""
    cfg = dataclasses.replace(I64, bn_eps=1e-3, sn_eps=1e-6)
    state = generator_state(cfg)
    torch.save(state, tmp_path / "G_ema.pth")
    saved = run_config(1e-6, bn_eps=1e-3)
    if torch1:
        for key in ("G_activation", "D_activation"):
            saved["config"][key]._backend = _Torch1Backend()
    torch.save(saved, tmp_path / "state_dict.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read, not ignored with a warning
        net = generator_from_official(tmp_path / "G_ema.pth")
    assert net.linear.eps == 1e-6
    assert {m.eps for m in net.modules() if isinstance(m, ClassConditionalBatchNorm)} == {1e-3}
    assert_same_images(net, state, cfg)
    # The difference the file makes: the default epsilons give other images.
    z, y = g_inputs(cfg)
    with torch.no_grad():
        assert not torch.allclose(generator_from_official(state)(z, y), generator_forward(state, cfg, z, y), atol=1e-5)
    d_cfg = dataclasses.replace(D64, sn_eps=1e-6)
    torch.save(discriminator_state(d_cfg), tmp_path / "D.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = discriminator_from_official(tmp_path / "D.pth")
    assert d.linear.eps == 1e-6
    assert_same_logits(d, discriminator_state(d_cfg), d_cfg)


class _Unknown:
    """A class no allow-list names."""


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda path: path.write_bytes(b"not a checkpoint"), "cannot be read"),
        (lambda path: torch.save({"config": {"BN_eps": 1e-3, "x": _Unknown()}}, path), r"holds a .*_Unknown object"),
        (lambda path: torch.save({"itr": 5}, path), "holds no 'config' dictionary"),
        (lambda path: torch.save({"config": {"G_ch": 96}}, path), "records none of SN_eps, BN_eps"),
    ],
    ids=["garbage", "foreign-class", "no-config", "no-values"],
)
def test_unusable_run_config_is_a_visible_warning(tmp_path: Path, write: Callable[[Path], object], reason: str) -> None:
    state = generator_state(CIFAR)
    torch.save(state, tmp_path / "G.pth")
    write(tmp_path / "state_dict.pth")
    with pytest.warns(UserWarning, match=f"ignoring {tmp_path / 'state_dict.pth'}: .*{reason}") as caught:
        net = generator_from_official(tmp_path / "G.pth")
    message = str(caught[0].message)
    assert "sn_eps= (its SN_eps)" in message and "bn_eps= (its BN_eps)" in message
    assert caught[0].filename == __file__  # points at the caller's line
    assert net.linear.eps == 1e-12
    assert_same_images(net, state, CIFAR)
    # Every value passed by the caller: the file is not needed, so nothing to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        generator_from_official(tmp_path / "G.pth", sn_eps=1e-12, bn_eps=1e-5, num_sv_itrs=1)


@pytest.mark.parametrize(("cfg", "counter"), [(I64, 0.0), (I128, 16.0)], ids=["running", "standing"])
def test_mybn_layout_gives_the_same_images(tmp_path: Path, cfg: GConfig, counter: float) -> None:
    """``--mybn`` keeps stats under ``.bn.``; after standing-stat accumulation they are sums over the counter."""
    state = generator_state(cfg)
    mybn = to_mybn(state, counter)
    assert "blocks.0.0.bn1.bn.accumulation_counter" in mybn and "blocks.0.0.bn1.stored_mean" not in mybn
    torch.save(mybn, tmp_path / "G_ema.pth")
    net = generator_from_official(tmp_path / "G_ema.pth", sn_eps=cfg.sn_eps)
    z, y = g_inputs(cfg)
    torch.testing.assert_close(generator_forward(mybn, cfg, z, y), generator_forward(state, cfg, z, y))
    assert_same_images(net, mybn, cfg)


def test_stored_singular_values_are_logs_only() -> None:
    """Eval recomputes sigma from the stored u; scaling every sv<i> buffer must change nothing."""
    state = generator_state(I64)
    logged = {k: v * 3 if ".sv" in k else v for k, v in state.items()}
    assert_same_images(generator_from_official(logged), state, I64)


def test_module_prefix_from_data_parallel_is_dropped() -> None:
    state = discriminator_state(D_CIFAR)
    net = discriminator_from_official({f"module.{k}": v for k, v in state.items()})
    assert_same_logits(net, state, D_CIFAR)


class Payload:
    """Something a weights-only load must refuse to build."""


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda p: torch.save(discriminator_state(D_CIFAR), p), "D.pth: use discriminator_from_official"),
        (lambda p: torch.save({"main.0.weight": torch.zeros(8, 4, 4, 4)}, p), "has no output_layer.2.weight"),
        (lambda p: p.write_bytes(b"\x00garbage"), "not a plain PyTorch state dict"),
        (lambda p: torch.save({"x": Payload()}, p), "not a plain PyTorch state dict"),
        (lambda p: torch.save({"itr": 3, "config": {"G_ch": 96}}, p), "not a state dict of tensors"),
        (lambda p: None, "does not exist"),
    ],
    ids=["d-file", "dcgan-file", "garbage", "pickle", "state_dict.pth", "missing"],
)
def test_generator_errors_are_one_clear_line(tmp_path: Path, make: Callable[[Path], object], pattern: str) -> None:
    path = tmp_path / "G_ema.pth"
    make(path)
    with pytest.raises(CheckpointError, match=pattern) as info:
        generator_from_official(path)
    assert "\n" not in str(info.value) and "G.pth / G_ema.pth" in str(info.value)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    torch.save(generator_state(CIFAR), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "G.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a plain PyTorch state dict"):
        generator_from_official(tmp_path / "G.pth")


def test_discriminator_refuses_a_generator_file() -> None:
    with pytest.raises(CheckpointError, match="G.pth: use generator_from_official"):
        discriminator_from_official(generator_state(CIFAR))


def test_layout_mismatch_names_the_keys() -> None:
    state = generator_state(I64)
    del state["blocks.1.0.conv2.u0"]
    state["blocks.1.0.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing: blocks\.1\.0\.conv2\.u0; unexpected: blocks\.1\.0\.extra"):
        generator_from_official(state)
    state = discriminator_state(D_CIFAR)
    state["linear.bias"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"size mismatch: linear\.bias \(2,\) vs \(1,\).*D\.pth"):
        discriminator_from_official(state)
