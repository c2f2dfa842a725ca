"""The Python API: ``ganzoo.load`` on every supported file kind, ``generate`` / ``translate``, the image helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png, read_file

import ganzoo
from ganzoo.checkpoint import load_checkpoint_file, load_model
from ganzoo.errors import CheckpointError, ConfigError
from ganzoo.models.biggan import BigGAN
from ganzoo.models.cyclegan import CycleGAN
from ganzoo.models.dcgan import DCGAN
from ganzoo.models.translation import OneWayTranslator
from ganzoo.nets.unet import UnetGenerator
from tests.builders import randomise
from tests.conftest import QUIET, cli_env, process_state_kept, run_cli
from tests.data.writers import write_image_folder, write_unpaired_folders
from tests.references.biggan import DConfig, GConfig, discriminator_state, generator_forward, generator_state
from tests.references.cyclegan import RefDiscriminator, RefGenerator, RefUnetGenerator, save_like_reference
from tests.references.dcgan import reference_netD, reference_netG

# A 32 px BigGAN-PyTorch G with unshared class embeddings (launch_cifar_ema.sh's layout), at a tiny width.
BIGGAN = GConfig(resolution=32, ch=4, dim_z=16, n_classes=10, shared=False, shared_dim=0, hier=False, attention="0")


@pytest.fixture(scope="module")
def dcgan_checkpoint(dcgan_smoke_run: Path) -> Path:
    return dcgan_smoke_run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def cyclegan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` (step 3) of a debug=smoke CycleGAN run of tiny networks on unpaired folders, trained by
    ``ganzoo.train.train`` in this process: the API only reads the file."""
    from ganzoo.train import compose_config, train

    root = tmp_path_factory.mktemp("cyclegan")
    data_dir = write_unpaired_folders(root / "data", n_train_a=4, n_train_b=4, n_test_a=2, n_test_b=2)
    overrides = (
        "model=cyclegan", "data=unpaired", f"data.data_dir={data_dir}", "data.image_size=32", "data.load_size=36",
        "data.batch_size=2", "data.num_workers=0", "model.generator.ngf=4", "model.generator.n_blocks=1",
        "model.discriminator.ndf=4", "~metrics", *QUIET, f"paths.data_dir={root}",
    )  # fmt: skip
    with process_state_kept(threads=1):
        train(compose_config(overrides, output_dir=str(root / "run")))
    checkpoint = root / "run" / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(checkpoint)["global_step"] == 3
    return checkpoint


def assert_ready_for_sampling(model: torch.nn.Module) -> None:
    """Eval mode everywhere, every weight on the CPU."""
    assert not any(m.training for m in model.modules())
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}


def assert_images(images: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert images.shape == shape and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0


def test_ganzoo_checkpoint_generates_reproducibly_in_three_lines(dcgan_checkpoint: Path, tmp_path: Path) -> None:
    g = ganzoo.load(dcgan_checkpoint)
    ganzoo.save_grid(g.generate(16, seed=0), tmp_path / "grid.png")
    assert decode_png(read_file(str(tmp_path / "grid.png"))).shape == (1, 4 * 32 + 5 * 2, 4 * 32 + 5 * 2)

    assert isinstance(g, DCGAN) and g.num_classes == 0
    assert_ready_for_sampling(g)
    images = g.generate(6, seed=3)
    assert_images(images, (6, 1, 32, 32))
    assert torch.equal(images, g.generate(6, seed=3))
    assert not torch.equal(images, g.generate(6, seed=4))
    # The seed fixes the latents: those of a CPU generator seeded with it, whatever the device.
    trained = load_model(dcgan_checkpoint)
    z = torch.randn(6, trained.latent_dim, generator=torch.Generator().manual_seed(3))
    assert torch.equal(images, trained.generate(z=z))
    truncated = g.generate(6, truncation=0.5, seed=3)
    assert torch.equal(truncated, g.generate(6, truncation=0.5, seed=3)) and not torch.equal(truncated, images)
    assert torch.equal(ganzoo.to_uint8(images), ((images + 1) * 127.5).round().to(torch.uint8))

    with pytest.raises(ConfigError, match="not class-conditional"):
        g.generate(4, classes=[1])
    with pytest.raises(ConfigError, match="positive number"):
        g.generate(0)
    assert g.training is False and not hasattr(g, "translate")


def test_biggan_pytorch_generator_honours_classes_and_seed(tmp_path: Path) -> None:
    state = generator_state(BIGGAN)
    # Named like a DCGAN file on purpose: the kind is read off the keys, not the name.
    torch.save(state, tmp_path / "netG_epoch_3.pth")
    g = ganzoo.load(tmp_path / "netG_epoch_3.pth", device="cpu")
    assert isinstance(g, BigGAN) and (g.num_classes, g.latent_dim) == (10, 16)
    assert_ready_for_sampling(g)

    images = g.generate(5, classes=[2, 7], seed=0)
    assert_images(images, (5, 3, 32, 32))
    # The reference's eval forward on the seed's latents and the classes cycled to n.
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    expected = generator_forward(state, BIGGAN, z, torch.tensor([2, 7, 2, 7, 2]))
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(images, g.generate(5, classes=[3], seed=0), atol=1e-3)

    # Without classes the labels are drawn uniformly from the seed, before the latents.
    seeded = torch.Generator().manual_seed(1)
    labels = torch.randint(10, (5,), generator=seeded)
    z = torch.randn(5, 16, generator=seeded)
    torch.testing.assert_close(g.generate(5, seed=1), generator_forward(state, BIGGAN, z, labels), rtol=0, atol=1e-5)
    assert torch.equal(g.class_labels(5, None, torch.Generator().manual_seed(1)), labels)

    with pytest.raises(ConfigError, match=r"classes \[10\] are outside 0..9"):
        g.generate(2, classes=[0, 10])
    with pytest.raises(ConfigError, match="integer class ids"):
        g.generate(2, classes=torch.tensor([0.5]))


def test_pytorch_examples_netg_generates_what_the_reference_does(tmp_path: Path) -> None:
    ref = randomise(reference_netG(nz=16, ngf=4, nc=1), std=0.05)
    torch.save(ref.state_dict(), tmp_path / "generator.pth")
    g = ganzoo.load(tmp_path / "generator.pth", device=torch.device("cpu"))
    assert isinstance(g, DCGAN) and g.discriminator is None and g.latent_dim == 16
    assert_ready_for_sampling(g)
    images = g.generate(3, seed=5)
    assert_images(images, (3, 1, 64, 64))
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(images, ref.main(z.view(3, 16, 1, 1)), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="not class-conditional"):
        g.generate(3, classes=[0])
    with pytest.raises(ConfigError, match="sampling only"):
        g.configure_optimizers()


@pytest.mark.parametrize("name", ["latest_net_G_A.pth", "latest_net_G_B.pth"])
def test_official_cyclegan_generator_translates_its_own_direction(tmp_path: Path, name: str) -> None:
    ref = randomise(RefGenerator(3, 3, ngf=4, blocks=2))
    path = save_like_reference(ref, tmp_path / name)
    t = ganzoo.load(path, device="auto" if not torch.cuda.is_available() else "cpu")
    assert isinstance(t, OneWayTranslator) and not hasattr(t, "generate")
    assert_ready_for_sampling(t)
    own, other = ("AtoB", "BtoA") if name.endswith("G_A.pth") else ("BtoA", "AtoB")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(t.translate(x, own), ref(x).clamp(-1, 1))
    assert t.source_channels(own) == 3
    with pytest.raises(ConfigError, match=f"translates {own} only: use direction={own}"):
        t.translate(x, other)
    # A renamed file in the pre-zip format of PyTorch < 1.6 (as old pretrained files are): the direction is given.
    renamed = tmp_path / "zebra2horse.pth"
    torch.save(ref.state_dict(), renamed, _use_new_zipfile_serialization=False)
    with torch.no_grad():
        assert torch.equal(ganzoo.load(renamed, direction="BtoA").translate(x, "BtoA"), ref(x).clamp(-1, 1))
    with pytest.raises(ConfigError, match="use AtoB or BtoA"):
        ganzoo.load(renamed, direction="sideways")


def official_pix2pix_test(ref: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The official test script without --eval on ``images``: G in train mode, one image at a time, after one
    ``torch.manual_seed(0)``; outputs clamped to [-1, 1]."""
    ref.train()
    torch.manual_seed(0)
    with torch.no_grad():
        return torch.cat([ref(image[None]) for image in images]).clamp(-1, 1)


def test_official_pix2pix_generator_translates_by_the_official_test_protocol(tmp_path: Path) -> None:
    # The official U-Net's layout at a tiny size: num_downs=6 at 64 px keeps one dropout block (unet_256 has three).
    ref = randomise(RefUnetGenerator(3, 3, 6, ngf=4))
    path = save_like_reference(ref, tmp_path / "latest_net_G.pth")
    t = ganzoo.load(path)
    assert isinstance(t, OneWayTranslator) and isinstance(t.generator, UnetGenerator) and not hasattr(t, "generate")
    assert t.eval_mode is False and t.directions == ("AtoB",) and t.source_channels() == 3
    assert_ready_for_sampling(t)
    stored = {k: v.clone() for k, v in t.generator.state_dict().items()}
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    out = t.translate(x)
    assert torch.equal(out, official_pix2pix_test(ref, x))
    # The same masks at every call (seed 0), others from another seed; the stored statistics stay as they were.
    assert torch.equal(t.translate(x), out) and not torch.equal(t.translate(x, seed=1), out)
    assert all(torch.equal(v, stored[k]) for k, v in t.generator.state_dict().items())
    assert_ready_for_sampling(t)

    # A pretrained file (renamed, DataParallel's prefix, PyTorch < 1.6's format), the direction given.
    pretrained = tmp_path / "facades_label2photo.pth"
    save_like_reference(ref, pretrained, prefix="module.")
    torch.save(torch.load(pretrained, weights_only=True), pretrained, _use_new_zipfile_serialization=False)
    t_b = ganzoo.load(pretrained, direction="BtoA")
    assert t_b.directions == ("BtoA",) and torch.equal(t_b.translate(x, "BtoA"), out)
    with pytest.raises(ConfigError, match="translates BtoA only: use direction=BtoA"):
        t_b.translate(x, "AtoB")
    with pytest.raises(ConfigError, match="num_downs=6 needs image sides that are multiples of 64"):
        t.translate(torch.zeros(1, 3, 32, 32))


def test_translate_command_runs_an_official_pix2pix_generator(tmp_path: Path) -> None:
    ref = randomise(RefUnetGenerator(3, 3, 5, ngf=4))
    weights = save_like_reference(ref, tmp_path / "latest_net_G.pth")
    inputs = write_image_folder(tmp_path / "in", n=3, size=32)
    out = tmp_path / "out"
    run_cli("translate", f"ckpt={weights}", f"input={inputs}", f"output={out}", "image_size=32", "device=cpu",
            env=cli_env(tmp_path))  # fmt: skip
    names = sorted(p.name for p in inputs.glob("*.png"))
    assert sorted(p.name for p in out.glob("*.png")) == names
    sources = torch.stack([decode_png(read_file(str(inputs / name))) for name in names])
    written = torch.stack([decode_png(read_file(str(out / name))) for name in names])
    # One batch of three, translated as the official test script would, then written as 8-bit PNGs.
    expected = ganzoo.to_uint8(official_pix2pix_test(ref, sources.float() / 127.5 - 1))
    assert written.shape == (3, 3, 32, 32) and (written.int() - expected.int()).abs().max() <= 1

    # At each image's own size (image_size=null), sides round down to what this U-Net takes: multiples of 32.
    from ganzoo.translate import translate_folder

    odd = write_image_folder(tmp_path / "odd", n=2, size=(70, 45))
    outputs = translate_folder(weights, odd, tmp_path / "odd_out", image_size=None, device="cpu")
    assert [tuple(decode_png(read_file(str(p))).shape) for p in outputs] == [(3, 32, 64)] * 2


def test_ganzoo_cyclegan_checkpoint_translates_both_ways(cyclegan_checkpoint: Path) -> None:
    t = ganzoo.load(cyclegan_checkpoint)
    assert isinstance(t, CycleGAN) and not hasattr(t, "generate")
    assert_ready_for_sampling(t)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    for direction, net in (("AtoB", t.generator_a2b), ("BtoA", t.generator_b2a)):
        out = t.translate(x, direction)
        assert out.shape == x.shape and out.dtype == torch.float32 and out.abs().max() <= 1
        with torch.no_grad():
            assert torch.equal(out, net(x).clamp(-1, 1))
    assert not torch.equal(t.translate(x, "AtoB"), t.translate(x, "BtoA"))
    with pytest.raises(ConfigError, match="use AtoB or BtoA"):
        t.translate(x, "AtoC")
    with pytest.raises(ConfigError, match="direction= only applies"):
        ganzoo.load(cyclegan_checkpoint, direction="AtoB")


def _text_file(path: Path) -> None:
    path.write_text("not weights")


def _dcgan_discriminator(path: Path) -> None:
    torch.save(reference_netD(ndf=4, nc=1).state_dict(), path)


def _cyclegan_discriminator(path: Path) -> None:
    save_like_reference(RefDiscriminator(3, ndf=4), path)


def _pix2pix_discriminator(path: Path) -> None:
    save_like_reference(RefDiscriminator(6, ndf=4, norm="batch"), path)  # D on input and output side by side


def _biggan_discriminator(path: Path) -> None:
    torch.save(discriminator_state(DConfig(resolution=32, ch=4, n_classes=10, attention="0")), path)


def _biggan_run_state(path: Path) -> None:
    torch.save({"itr": 1000, "epoch": 2, "config": {"G_ch": 64}}, path)


def _foreign_state_dict(path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)


def _pickled_object(path: Path) -> None:
    torch.save({"net": torch.nn.Linear(2, 2)}, path)


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (None, "does not exist"),
        (_text_file, "not a readable PyTorch file"),
        (_dcgan_discriminator, "DCGAN discriminator"),
        (_cyclegan_discriminator, "CycleGAN or pix2pix discriminator"),
        (_pix2pix_discriminator, "CycleGAN or pix2pix discriminator"),
        (_biggan_discriminator, "BigGAN-PyTorch discriminator"),
        (_biggan_run_state, "run state"),
        (_foreign_state_dict, "not a supported weights file"),
        (_pickled_object, "holds Python objects"),
    ],
    ids=[
        "missing",
        "text",
        "dcgan-netD",
        "cyclegan-netD",
        "pix2pix-netD",
        "biggan-D",
        "biggan-state",
        "foreign",
        "pickled",
    ],
)
def test_unsupported_files_name_the_file_and_what_to_pass(tmp_path: Path, write, expected: str) -> None:
    path = tmp_path / "weights.pth"
    if write is not None:
        write(path)
    with pytest.raises(CheckpointError, match=expected) as error:
        ganzoo.load(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert "G_ema.pth" in message or "netG_epoch" in message or "latest_net_G_A.pth" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_unavailable_device_is_one_line_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no usable GPU: use device='cpu'"):
        ganzoo.load(tmp_path / "absent.ckpt", device="cuda:1")
    with pytest.raises(ConfigError, match="is not a device"):
        ganzoo.load(tmp_path / "absent.ckpt", device="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_seed_gives_the_same_images_on_the_gpu(tmp_path: Path) -> None:
    state = generator_state(BIGGAN)
    torch.save(state, tmp_path / "G_ema.pth")
    on_gpu = ganzoo.load(tmp_path / "G_ema.pth", device="cuda")
    assert {p.device.type for p in on_gpu.parameters()} == {"cuda"}
    images = on_gpu.generate(4, classes=[1, 2], truncation=0.8, seed=7)
    assert images.device.type == "cuda"
    on_cpu = ganzoo.load(tmp_path / "G_ema.pth").generate(4, classes=[1, 2], truncation=0.8, seed=7)
    torch.testing.assert_close(images.cpu(), on_cpu, rtol=0, atol=1e-3)


def test_import_is_light_and_help_explains_load() -> None:
    code = "import sys, ganzoo; print('torch' in sys.modules); help(ganzoo.load)"
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("False")  # `import ganzoo` alone loads no torch
    assert "ganzoo.save_grid(g.generate(16, seed=0)" in proc.stdout and "G_ema.pth" in proc.stdout
    assert set(ganzoo.__all__) <= set(dir(ganzoo))


def test_save_grid_needs_a_png_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name the file grid.png"):
        ganzoo.save_grid(torch.zeros(4, 3, 8, 8), tmp_path / "grid.jpg")
    nested = ganzoo.save_grid(ganzoo.to_uint8(torch.zeros(4, 3, 8, 8)), tmp_path / "a" / "b.png", nrow=4)
    assert decode_png(read_file(str(nested))).shape == (3, 8 + 4, 4 * 8 + 5 * 2)
