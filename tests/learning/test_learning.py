"""Each model learns real Fashion-MNIST: DCGAN's FID falls far below the untrained model's and D stays informative;
CycleGAN turns sneakers into boots; pix2pix draws the item behind an edge map; BigGAN draws the class it is asked for.

The yardstick is ganzoo's offline evaluator (``metrics=classifier``, the default): FID, KID and class coverage
in the feature space of a small classifier trained on Fashion-MNIST itself. Inception features describe
ImageNet photos and cannot be downloaded here; features of a classifier that separates the ten clothing
classes measure what matters for these images, and its predictions tell whether samples cover the classes.
The run evaluates itself before the first step (the untrained generator, the baseline) and at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganzoo.checkpoint import load_model
from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule
from ganzoo.images import from_uint8
from tests.builders import read_rows
from tests.conftest import cli_env, run_cli

STEPS = 400

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="needs Fashion-MNIST (`make install` adds it)"),
]


def test_dcgan_learns_fashion_mnist(tmp_path: Path, fashion_mnist_evaluator: Path) -> None:
    run_dir = tmp_path / "run"
    # No local data, so the Debian copy of the real data is used; the evaluator classifier is the session's
    # (fashion_mnist_evaluator), trained once for every test that evaluates on real Fashion-MNIST.
    env = cli_env(tmp_path / "no-local-data", GANZOO_CACHE=str(fashion_mnist_evaluator))
    run_cli(
        "train",
        f"trainer.max_steps={STEPS}",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
        f"callbacks.sample_grid.every_n_steps={STEPS}",
        f"callbacks.model_checkpoint.every_n_train_steps={STEPS}",
        "metrics.every_n_steps=200",
        "metrics.evaluation.num_samples=2000",
        f"hydra.run.dir={run_dir}",
        env=env,
        timeout=900,
    )
    _, rows = read_rows(run_dir)
    by_step = {int(r["step"]): r for r in rows if r.get("val/fid_fmnist")}
    assert sorted(by_step) == [0, 200, STEPS]
    fid = {step: float(r["val/fid_fmnist"]) for step, r in by_step.items()}
    accuracy = next(float(r["evaluator/accuracy_fmnist"]) for r in rows if r.get("evaluator/accuracy_fmnist"))
    coverage = float(by_step[STEPS]["val/class_coverage_fmnist"])
    entropy = {step: float(r["val/class_entropy_fmnist"]) for step, r in by_step.items()}
    print(f"evaluator accuracy {accuracy:.4f}; FID {fid}; class coverage {coverage:.2f}; class entropy {entropy}")
    assert accuracy >= 0.90, "the yardstick classifier itself is too weak"
    assert fid[STEPS] < 0.35 * fid[0]
    assert float(by_step[STEPS]["val/kid_fmnist"]) < 0.35 * float(by_step[0]["val/kid_fmnist"])
    # The samples spread over the clothing classes instead of collapsing onto a few (the untrained generator's
    # blobs all look like one class): most classes get at least half their share, and the class histogram
    # is close to uniform.
    assert coverage >= 0.6 and entropy[STEPS] >= 0.8 and entropy[0] < 0.5

    # ganzoo.evaluate reproduces the final value from the checkpoint alone.
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    run_cli("evaluate", f"ckpt={checkpoint}", env=env)
    report = json.loads(checkpoint.with_name("last_metrics.json").read_text())
    assert report["metrics"]["val/fid_fmnist"] == pytest.approx(fid[STEPS], rel=1e-5)

    # D has not collapsed to a constant: it still tells real from generated images apart, and is not saturated.
    trained = load_model(checkpoint)
    data = FashionMNISTDataModule(data_dir=str(tmp_path / "no-local-data"), image_size=32)
    data.setup()
    real = from_uint8(data.val_set.images[:500])
    fake = trained.generate(z=trained.sample_latent(500, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        logits = torch.cat([trained.discriminator(real), trained.discriminator(fake)])
    assert logits.std() > 0.1
    late = [r for r in rows if r.get("train/d_real") and int(r["step"]) > STEPS // 2]
    d_real = sum(float(r["train/d_real"]) for r in late) / len(late)
    d_fake = sum(float(r["train/d_fake"]) for r in late) / len(late)
    assert 0.1 < d_fake < d_real < 0.99, (d_real, d_fake)


def train_recipe(experiment: str, steps: int, run_dir: Path, env: dict[str, str], *extra: str) -> list[dict[str, str]]:
    """Train ``experiment`` on the real data for ``steps`` iterations, evaluating at the start and the end, with
    sheets and a checkpoint at the end; returns the rows of the run's metrics.csv."""
    run_cli(
        "train",
        f"experiment={experiment}",
        f"trainer.max_steps={steps}",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
        f"metrics.every_n_steps={steps}",
        f"callbacks.sample_grid.every_n_steps={steps}",
        f"callbacks.translation_grid.every_n_steps={steps}",
        f"callbacks.model_checkpoint.every_n_train_steps={steps}",
        *extra,
        f"hydra.run.dir={run_dir}",
        env=env,
        timeout=900,
    )
    return read_rows(run_dir)[1]


CYCLEGAN_STEPS = 150


def test_cyclegan_turns_sneakers_into_boots(tmp_path: Path, fashion_mnist_evaluator: Path) -> None:
    """experiment=cyclegan_fmnist for a short CPU budget: the evaluator calls the A -> B translations of test
    sneakers ankle boots far more often than for the untrained model, their domain FID to the test boots falls,
    and the cycle reconstruction error falls."""
    run_dir = tmp_path / "run"
    env = cli_env(tmp_path / "no-local-data", GANZOO_CACHE=str(fashion_mnist_evaluator))
    rows = train_recipe("cyclegan_fmnist", CYCLEGAN_STEPS, run_dir, env, "trainer.log_every_n_steps=5")
    evaluations = {int(r["step"]): r for r in rows if r.get("val/fid_fmnist")}
    assert sorted(evaluations) == [0, CYCLEGAN_STEPS]
    accuracy = {step: float(r["val/class_accuracy_fmnist"]) for step, r in evaluations.items()}
    fid = {step: float(r["val/fid_fmnist"]) for step, r in evaluations.items()}
    cycle = [
        float(r["train/loss_cycle_a"]) + float(r["train/loss_cycle_b"]) for r in rows if r.get("train/loss_cycle_a")
    ]
    early, late = sum(cycle[:3]) / 3, sum(cycle[-3:]) / 3
    print(f"boot share of translations {accuracy}; FID {fid}; cycle loss {early:.3f} -> {late:.3f}")
    assert accuracy[CYCLEGAN_STEPS] > 0.8 and accuracy[CYCLEGAN_STEPS] > accuracy[0] + 0.5
    assert fid[CYCLEGAN_STEPS] < 0.3 * fid[0]
    assert late < 0.5 * early
    assert (run_dir / "translations" / "last.png").is_file()


PIX2PIX_STEPS = 120


def test_pix2pix_draws_the_item_behind_an_edge_map(tmp_path: Path, fashion_mnist_evaluator: Path) -> None:
    """experiment=pix2pix_fmnist for a short CPU budget: on the first 500 test pairs the outputs come far closer to
    their own targets than the untrained model's (L1, PSNR, SSIM), and the evaluator assigns far more of them to the
    class of the item their edges came from."""
    run_dir = tmp_path / "run"
    env = cli_env(tmp_path / "no-local-data", GANZOO_CACHE=str(fashion_mnist_evaluator))
    rows = train_recipe("pix2pix_fmnist", PIX2PIX_STEPS, run_dir, env, "metrics.evaluation.num_samples=500")
    evaluations: dict[int, dict[str, float]] = {}
    for r in rows:  # a step's values may be spread over several rows
        values = {k: float(v) for k, v in r.items() if k.startswith("val/") and v}
        if values:
            evaluations.setdefault(int(r["step"]), {}).update(values)
    assert sorted(evaluations) == [0, PIX2PIX_STEPS]
    start, end = evaluations[0], evaluations[PIX2PIX_STEPS]
    print(f"untrained {start}; after {PIX2PIX_STEPS} iterations {end}")
    assert end["val/l1"] < 0.6 * start["val/l1"]
    assert end["val/psnr"] > start["val/psnr"] + 4  # dB
    assert end["val/ssim"] > start["val/ssim"] + 0.2
    assert end["val/class_accuracy_fmnist"] > start["val/class_accuracy_fmnist"] + 0.25
    assert end["val/fid_fmnist"] < 0.8 * start["val/fid_fmnist"]
    assert (run_dir / "translations" / "last.png").is_file()


BIGGAN_STEPS = 250


def test_biggan_learns_class_conditional_fashion_mnist(tmp_path: Path, fashion_mnist_evaluator: Path) -> None:
    """experiment=biggan_fmnist for a short CPU budget: the evaluator assigns the samples to the classes they
    were generated for far more often than chance (10%), and their FID falls."""
    run_dir = tmp_path / "run"
    env = cli_env(tmp_path / "no-local-data", GANZOO_CACHE=str(fashion_mnist_evaluator))
    rows = train_recipe("biggan_fmnist", BIGGAN_STEPS, run_dir, env, "metrics.evaluation.num_samples=1000")
    evaluations = {int(r["step"]): r for r in rows if r.get("val/fid_fmnist")}
    assert sorted(evaluations) == [0, BIGGAN_STEPS]
    accuracy = {step: float(r["val/class_accuracy_fmnist"]) for step, r in evaluations.items()}
    fid = {step: float(r["val/fid_fmnist"]) for step, r in evaluations.items()}
    print(f"class accuracy {accuracy}; FID {fid}")
    assert accuracy[BIGGAN_STEPS] >= 0.25 and accuracy[BIGGAN_STEPS] > accuracy[0] + 0.1
    assert fid[BIGGAN_STEPS] < 0.6 * fid[0]
    losses = [float(r["train/loss_g"]) for r in rows if r.get("train/loss_g")]
    assert losses and all(abs(v) < 50 for v in losses)  # hinge scores stay bounded: neither net ran away
    for sheet in ("class_sheets", "interp_z", "interp_class"):
        assert (run_dir / sheet / "last.png").is_file()


AUGMENT_STEPS = 600


def test_diffaugment_beats_no_augmentation_on_little_data(tmp_path: Path, fashion_mnist_evaluator: Path) -> None:
    """The short version of the README's data-efficiency comparison (``make results ARGS="--only data_efficiency"``):
    a DCGAN of 32 base channels on 300 training images (``data.train_fraction=0.005``), where its discriminator
    overfits within a few hundred iterations, reaches a clearly lower FID with DiffAugment than without, at the
    same seed and iterations."""
    env = cli_env(tmp_path / "no-local-data", GANZOO_CACHE=str(fashion_mnist_evaluator))
    fid = {}
    for augment in ("none", "diffaug"):
        rows = train_recipe(
            "dcgan_fmnist_10pct", AUGMENT_STEPS, tmp_path / augment, env,
            "data.train_fraction=0.005", f"model.augment={augment}", "model.generator.ngf=32",
            "model.discriminator.ndf=32", "metrics.evaluation.num_samples=1000",
        )  # fmt: skip
        fid[augment] = next(
            float(r["val/fid_fmnist"]) for r in rows if int(r["step"]) == AUGMENT_STEPS and "val/fid_fmnist" in r
        )
    print(f"FID after {AUGMENT_STEPS} iterations on 300 images: {fid}")
    assert fid["diffaug"] < 0.85 * fid["none"]
