"""ADA: the pipeline's ops (identity at p = 0, differentiable, pairs kept together) and the controller of p
(the paper's update, exact integer sums, checkpointable state, the same p on every DDP process)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganzoo.augment import AdaptiveAugment, build_augmentation
from ganzoo.errors import ConfigError

CPU = torch.device("cpu")


def images(n: int = 8, channels: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("pipeline", ["bgc", "bg", "b", "c"])
def test_p_zero_is_the_identity(pipeline: str) -> None:
    x = images()
    aug = AdaptiveAugment(pipeline, p=0.0)
    aug.reseed(0, CPU)
    assert torch.equal(aug(x), x)


def test_blit_alone_moves_whole_pixels_only() -> None:
    # Flips, quarter turns and integer shifts: every output pixel is an input pixel (reflected at the border).
    x = images(16, channels=1, size=16)
    aug = AdaptiveAugment("b", p=1.0)
    aug.reseed(1, CPU)
    y = aug(x)
    for item, out in zip(x, y, strict=True):
        values = set(item.flatten().tolist())
        assert all(any(math.isclose(v, w, abs_tol=1e-5) for w in values) for v in out.flatten().tolist()[:40])
    assert not torch.equal(y, x)


def test_each_op_applies_with_probability_p() -> None:
    # Colour only, p = 0.3: an image is untouched when none of the 5 ops fires, and the luma flip fires as a flip
    # half of the times it is chosen: probability 0.7^4 x 0.85 = 0.20.
    x = images(2000, size=4)
    aug = AdaptiveAugment("c", p=0.3)
    aug.reseed(2, CPU)
    untouched = (aug(x) - x).flatten(1).abs().amax(dim=1) < 1e-6
    assert float(untouched.float().mean()) == pytest.approx(0.7**4 * 0.85, abs=0.03)


@pytest.mark.parametrize("pipeline", ["b", "bg", "c"])
def test_gradients_flow_through_the_pipeline(pipeline: str) -> None:
    aug = AdaptiveAugment(pipeline, p=1.0)
    x = images(2, size=6).double().requires_grad_(True)

    def augmented(inputs: torch.Tensor) -> torch.Tensor:
        aug.reseed(3, CPU)
        return aug(inputs)

    assert torch.autograd.gradcheck(augmented, (x,))


def test_grey_images_and_stacked_pairs() -> None:
    grey = images(8, channels=1, seed=4)
    aug = AdaptiveAugment(p=1.0)
    aug.reseed(5, CPU)
    assert aug(grey).shape == grey.shape
    single = images(8, seed=6)
    aug.reseed(5, CPU)
    out = aug(torch.cat([single, single], dim=1), image_channels=3)
    assert torch.equal(out[:, :3], out[:, 3:])
    aug.reseed(5, CPU)
    torch.testing.assert_close(out[:, :3], aug(single))


def test_controller_moves_p_by_the_papers_step_every_interval() -> None:
    aug = AdaptiveAugment(target=0.6, interval=2, kimg=1.0, p=0.5)
    aug.observe_real(torch.tensor([3.0, 1.0, -2.0, 5.0]))  # r_t = (1 + 1 - 1 + 1) / 4 = 0.5 < 0.6
    aug.end_iteration(1, 4)
    assert float(aug.p) == 0.5  # not an adjustment iteration yet
    aug.observe_real(torch.tensor([[1.0], [-1.0], [-1.0], [-1.0]]))
    aug.end_iteration(2, 4)
    # r_t over both iterations = (2 - 2) / 8 = 0; 8 real images: p moves down by 8 / (1 * 1000).
    assert float(aug.p) == pytest.approx(0.5 - 8 / 1000)
    assert float(aug.logged_values()["train/ada_rt"]) == 0.0
    for iteration in range(3, 9):
        aug.observe_real(torch.ones(4))
        aug.end_iteration(iteration, 500)
    assert float(aug.p) == 1.0  # clamped
    fixed = AdaptiveAugment(target=None, p=0.3)
    fixed.observe_real(torch.ones(4))
    fixed.end_iteration(4, 4)
    assert float(fixed.p) == pytest.approx(0.3)


def test_controller_state_round_trips_mid_interval() -> None:
    aug = AdaptiveAugment(interval=4, kimg=1.0)
    aug.observe_real(torch.tensor([1.0, 1.0, -1.0]))
    aug.end_iteration(1, 3)
    state = aug.extra_state()
    assert {k: int(v) for k, v in state.items()} == {"sign_sum": 1, "sign_count": 3, "images": 3}
    resumed, other_rank = AdaptiveAugment(interval=4, kimg=1.0), AdaptiveAugment(interval=4, kimg=1.0)
    resumed.load_extra_state(state, rank=0)
    other_rank.load_extra_state(state, rank=1)
    for a in (aug, resumed):
        for iteration in (2, 3, 4):
            a.observe_real(torch.tensor([1.0, 1.0, 1.0]))
            a.end_iteration(iteration, 3)
    assert float(resumed.p) == float(aug.p) > 0
    assert int(other_rank.extra_state()["sign_sum"]) == 0  # the sums live on process 0 only


def test_bad_settings_name_their_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.augment_options\.pipeline='bgcf'"):
        AdaptiveAugment("bgcf")
    with pytest.raises(ConfigError, match=r"model\.augment_options\.target=1\.5"):
        AdaptiveAugment(target=1.5)
    with pytest.raises(ConfigError, match=r"model\.augment_options\.interval=0"):
        AdaptiveAugment(interval=0)
    with pytest.raises(ConfigError, match=r"model\.augment='diffaugment' is not one of none, diffaug, ada"):
        build_augmentation("diffaugment")
    with pytest.raises(ConfigError, match=r"model\.augment_options has unknown keys \['targte'\]"):
        build_augmentation("ada", {"targte": 0.5})
    assert build_augmentation("none", {"target": 0.5}) is None


def _two_process_controller(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        aug = AdaptiveAugment(target=0.6, interval=1, kimg=1.0, p=0.5)
        # Process 0 alone would see r_t = 1 (p up); over both processes r_t = (10 - 30) / 40 = -0.5 (p down).
        aug.observe_real(torch.ones(10) if rank == 0 else -torch.ones(30))
        aug.end_iteration(1, 64)
        state = aug.extra_state()  # collective, as when a checkpoint is saved
        Path(out_dir, f"{rank}.json").write_text(json.dumps({"p": float(aug.p), "sum": int(state["sign_sum"])}))
    finally:
        dist.destroy_process_group()


def test_p_is_the_same_on_every_process_and_uses_all_their_outputs(tmp_path: Path) -> None:
    mp.spawn(_two_process_controller, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0] == results[1]
    assert results[0]["p"] == pytest.approx(0.5 - 64 / 1000)
