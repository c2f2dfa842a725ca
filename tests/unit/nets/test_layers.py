"""BigGAN layers: spectral norm, stored-statistics batch norms, class embeddings and self-attention."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.nets.layers import (
    BatchNorm,
    ClassConditionalBatchNorm,
    ClassEmbedding,
    SelfAttention,
    SNConv2d,
    SNEmbedding,
    SNLinear,
    power_iteration,
)


def spectral_norm_of(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.detach().reshape(weight.shape[0], -1), ord=2).item()


SN_LAYERS = {
    "conv": lambda **kw: SNConv2d(4, 6, 3, padding=1, **kw),
    "linear": lambda **kw: SNLinear(10, 7, **kw),
    "embedding": lambda **kw: SNEmbedding(9, 5, **kw),
}


@pytest.mark.parametrize("kind", SN_LAYERS)
def test_converged_spectral_norm_is_one(kind: str) -> None:
    torch.manual_seed(0)
    layer = SN_LAYERS[kind](num_itrs=200).train()
    w = layer.normalized_weight()
    assert w.shape == layer.weight.shape and w.dtype == layer.weight.dtype
    assert spectral_norm_of(w) == pytest.approx(1.0, abs=1e-3)
    assert layer.sv0.item() == pytest.approx(spectral_norm_of(layer.weight), rel=1e-3)
    assert layer.u0.shape == (1, layer.weight.shape[0]) and layer.sv0.shape == (1,)


@pytest.mark.parametrize("kind", SN_LAYERS)
def test_spectral_norm_converges_over_training_steps(kind: str) -> None:
    torch.manual_seed(1)
    layer = SN_LAYERS[kind]().train()
    x = torch.randn(2, 4, 5, 5) if kind == "conv" else torch.randn(2, 10) if kind == "linear" else torch.tensor([1, 8])
    for _ in range(50):
        layer(x)
    assert spectral_norm_of(layer.normalized_weight()) == pytest.approx(1.0, abs=2e-3)


def test_sigma_matches_torch_spectral_norm() -> None:
    torch.manual_seed(2)
    ours = SNConv2d(3, 8, 3, num_itrs=300).train()
    theirs = nn.Conv2d(3, 8, 3)
    theirs.weight.data.copy_(ours.weight.data)
    theirs = torch.nn.utils.parametrizations.spectral_norm(theirs, n_power_iterations=300).train()
    torch.testing.assert_close(ours.normalized_weight(), theirs.weight, atol=1e-5, rtol=1e-4)


def test_two_singular_values_with_gram_schmidt() -> None:
    torch.manual_seed(3)
    left, _ = torch.linalg.qr(torch.randn(8, 8))
    right, _ = torch.linalg.qr(torch.randn(10, 10))
    values = torch.tensor([5.0, 3.0, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1])
    layer = SNLinear(10, 8, num_svs=2, num_itrs=100).train()
    layer.weight.data.copy_(left @ torch.diag(values) @ right[:8])
    layer.normalized_weight()
    assert layer.sv0.item() == pytest.approx(5.0, rel=1e-4)
    assert layer.sv1.item() == pytest.approx(3.0, rel=1e-4)
    assert [sv.item() for sv in layer.singular_values] == pytest.approx([5.0, 3.0], rel=1e-4)
    assert (layer.u0 @ layer.u1.t()).abs().item() < 1e-4  # the second vector is kept orthogonal to the first
    assert spectral_norm_of(layer.normalized_weight()) == pytest.approx(1.0, rel=1e-4)


def test_power_iteration_updates_only_when_asked() -> None:
    torch.manual_seed(4)
    w = torch.randn(5, 7)
    us = [torch.randn(1, 5), torch.randn(1, 5)]
    before = [u.clone() for u in us]
    svs, new_us, new_vs = power_iteration(w, us, update=False, eps=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(us, before, strict=True))
    assert len(svs) == 2 and new_us[0].shape == (1, 5) and new_vs[0].shape == (1, 7)
    power_iteration(w, us, update=True, eps=1e-12)
    torch.testing.assert_close(us[0], new_us[0])


def test_eval_takes_one_unstored_step_from_the_stored_u() -> None:
    torch.manual_seed(5)
    layer = SNLinear(6, 4, num_itrs=3).train()
    layer(torch.randn(2, 6))
    u0, sv0 = layer.u0.clone(), layer.sv0.clone()
    layer.eval()
    w = layer.normalized_weight()
    assert torch.equal(layer.u0, u0) and torch.equal(layer.sv0, sv0)
    # The reference repeats one step from the stored u num_itrs times without storing it.
    with torch.no_grad():
        v = F.normalize(u0 @ layer.weight)
        u = F.normalize(v @ layer.weight.t())
        sigma = (v @ layer.weight.t() @ u.t()).item()
    torch.testing.assert_close(w, layer.weight / sigma)
    layer.train()
    layer.normalized_weight()
    assert not torch.equal(layer.u0, u0) and not torch.equal(layer.sv0, sv0)


def test_gradient_flows_through_sigma() -> None:
    torch.manual_seed(6)
    layer = SNLinear(5, 4).train()
    layer.normalized_weight().sum().backward()
    assert layer.weight.grad is not None
    # With sigma treated as a constant every entry would get the same gradient 1 / sigma.
    assert not torch.allclose(layer.weight.grad, torch.full_like(layer.weight, 1 / layer.sv0.item()))


def test_power_iteration_stays_float32_under_bf16_autocast() -> None:
    torch.manual_seed(7)
    layer = SNConv2d(4, 8, 3, padding=1).train()
    reference = copy.deepcopy(layer)
    x = torch.randn(2, 4, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    expected = reference(x)
    assert layer.u0.dtype == torch.float32 and layer.sv0.dtype == torch.float32
    torch.testing.assert_close(layer.u0, reference.u0)
    torch.testing.assert_close(layer.sv0, reference.sv0)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)


def test_bf16_module_keeps_its_dtype() -> None:
    layer = SNLinear(6, 4).to(torch.bfloat16).train()
    u_before = layer.u0.clone()
    assert layer.normalized_weight().dtype == torch.bfloat16
    assert layer.u0.dtype == torch.bfloat16 and not torch.equal(layer.u0, u_before)


def test_bad_spectral_norm_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="num_svs >= 1"):
        SNLinear(3, 3, num_svs=0)
    with pytest.raises(ConfigError, match="max_norm=None"):
        SNEmbedding(3, 3, max_norm=1.0)


def test_class_embedding_takes_ids_one_hots_and_mixtures() -> None:
    torch.manual_seed(8)
    emb = ClassEmbedding(5, 3)
    ids = torch.tensor([4, 0, 2])
    torch.testing.assert_close(emb(F.one_hot(ids, 5).float()), emb(ids), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(emb(F.one_hot(ids, 5).float()), emb(ids), rtol=0, atol=0)
    mix = torch.zeros(1, 5)
    mix[0, 1], mix[0, 3] = 0.3, 0.7
    torch.testing.assert_close(emb(mix), 0.3 * emb.weight[1:2] + 0.7 * emb.weight[3:4])
    assert list(emb.state_dict()) == ["weight"] and emb.weight.shape == (5, 3)
    with pytest.raises(ConfigError, match=r"\(N, 5\)"):
        emb(torch.zeros(2, 4))


def test_conditional_bn_with_class_embeddings_matches_batch_norm_of_one_class() -> None:
    torch.manual_seed(9)
    bn = ClassConditionalBatchNorm(6, 5, ClassEmbedding).train()
    nn.init.normal_(bn.gain.weight)
    nn.init.normal_(bn.bias.weight)
    x = torch.randn(4, 6, 3, 3) * 2 + 1
    out = bn(x, torch.full((4,), 2))
    expected = F.batch_norm(x, None, None, training=True, eps=1e-5)
    expected = expected * (1 + bn.gain.weight[2]).view(1, 6, 1, 1) + bn.bias.weight[2].view(1, 6, 1, 1)
    torch.testing.assert_close(out, expected)
    assert set(bn.state_dict()) == {"gain.weight", "bias.weight", "stored_mean", "stored_var"}


def test_conditional_bn_with_sn_linear_matches_batch_norm_of_one_vector() -> None:
    torch.manual_seed(10)
    bn = ClassConditionalBatchNorm(6, 4, functools.partial(SNLinear, bias=False)).train()
    cond = torch.randn(1, 4)
    x = torch.randn(3, 6, 2, 2)
    out = bn(x, cond.expand(3, 4))
    # The stored sv0 is exactly the sigma that the training-mode call divided by.
    gain = F.linear(cond, bn.gain.weight / bn.gain.sv0)
    bias = F.linear(cond, bn.bias.weight / bn.bias.sv0)
    expected = F.batch_norm(x, None, None, training=True) * (1 + gain).view(1, 6, 1, 1) + bias.view(1, 6, 1, 1)
    torch.testing.assert_close(out, expected)
    assert {"gain.u0", "gain.sv0", "gain.weight"} <= set(bn.state_dict()) and "gain.bias" not in bn.state_dict()


def test_stored_stats_update_in_training_and_are_used_in_eval() -> None:
    torch.manual_seed(11)
    bn = BatchNorm(3).train()
    nn.init.normal_(bn.gain)
    nn.init.normal_(bn.bias)
    x = torch.randn(8, 3, 4, 4) * 3 + 2
    bn(x)
    torch.testing.assert_close(bn.stored_mean, 0.1 * x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.stored_var, 0.9 + 0.1 * x.transpose(0, 1).reshape(3, -1).var(dim=1))
    bn.eval()
    mean, var = bn.stored_mean.view(1, 3, 1, 1), bn.stored_var.view(1, 3, 1, 1)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * bn.gain.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(bn(x), expected)
    assert set(bn.state_dict()) == {"gain", "bias", "stored_mean", "stored_var"}


def test_momentum_none_averages_all_batches_since_reset() -> None:
    torch.manual_seed(12)
    bn = ClassConditionalBatchNorm(2, 3, ClassEmbedding).train()
    bn(torch.randn(4, 2, 3, 3) * 5, torch.zeros(4, dtype=torch.long))  # stale statistics to be discarded
    bn.reset_running_stats()
    assert torch.equal(bn.stored_mean, torch.zeros(2)) and torch.equal(bn.stored_var, torch.ones(2))
    bn.momentum = None
    batches = [torch.randn(4, 2, 3, 3) + shift for shift in (-2.0, 0.5, 4.0)]
    for x in batches:
        bn(x, torch.ones(4, dtype=torch.long))
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches])
    variances = torch.stack([x.transpose(0, 1).reshape(2, -1).var(dim=1) for x in batches])
    torch.testing.assert_close(bn.stored_mean, means.mean(0))
    torch.testing.assert_close(bn.stored_var, variances.mean(0))


def test_self_attention_starts_as_identity() -> None:
    torch.manual_seed(13)
    attn = SelfAttention(16).train()
    x = torch.randn(2, 16, 6, 4)
    out = attn(x)
    assert out.shape == x.shape and torch.equal(out, x)
    out.square().sum().backward()
    assert attn.gamma.grad is not None and attn.gamma.grad.abs().item() > 0  # so gamma can leave 0
    with torch.no_grad():
        attn.gamma.fill_(0.5)
    assert not torch.allclose(attn(x), x)
    assert set(attn.state_dict()) >= {"theta.weight", "phi.u0", "g.sv0", "o.weight", "gamma"}
    assert attn.theta.weight.shape == (2, 16, 1, 1) and attn.g.weight.shape == (8, 16, 1, 1)
    assert attn.o.weight.shape == (16, 8, 1, 1) and attn.theta.bias is None


def test_self_attention_refusals() -> None:
    with pytest.raises(ConfigError, match="even sides"):
        SelfAttention(8)(torch.zeros(1, 8, 5, 4))
    with pytest.raises(ConfigError, match=">= 8 channels"):
        SelfAttention(4)
