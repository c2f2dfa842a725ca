"""ganzoo.sampling: the two kinds of model, fixed latents, cycled labels, batched generation, truncation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo.errors import ConfigError
from ganzoo.models.dcgan import DCGAN
from ganzoo.models.translation import OneWayTranslator
from ganzoo.nets.cyclegan import ResnetGenerator
from ganzoo.sampling import (
    ImageToImage,
    NoiseToImage,
    class_labels,
    cycled_classes,
    cycled_labels,
    draw_latents,
    fixed_latents,
    generate_in_batches,
    seeded_inputs,
    translate_in_batches,
    truncate,
)
from tests.builders import tiny_biggan, tiny_cyclegan, tiny_dcgan, tiny_pix2pix


# -------------------------------------------------------------------------------------------------- protocols
def test_protocols_tell_noise_to_image_from_image_to_image_models() -> None:
    noise_models = [seeded_tiny_dcgan(), tiny_biggan()]
    one_way = OneWayTranslator(ResnetGenerator(1, 1, ngf=4, n_blocks=1), "BtoA")
    translators = [tiny_cyclegan(), one_way, tiny_pix2pix(direction="BtoA")]
    for model in noise_models:
        assert isinstance(model, NoiseToImage) and not isinstance(model, ImageToImage), type(model)
    for model in translators:
        assert isinstance(model, ImageToImage) and not isinstance(model, NoiseToImage), type(model)
        assert not hasattr(model, "generate")  # nothing inherited that could only fail
    assert translators[0].directions == ("AtoB", "BtoA")
    assert translators[1].directions == translators[2].directions == ("BtoA",)
    assert not isinstance(nn.Linear(2, 2), NoiseToImage | ImageToImage)


# ----------------------------------------------------------------------------------------- latents and labels
def test_fixed_latents_are_the_seeds_own() -> None:
    z = fixed_latents(6, 8, seed=3)
    assert z.shape == (6, 8) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert torch.equal(z, fixed_latents(6, 8, seed=3))
    assert not torch.allclose(z, fixed_latents(6, 8, seed=4))
    assert torch.equal(fixed_latents(10, 8, seed=3)[:6], z)  # more samples extend the same draw
    with pytest.raises(ConfigError, match="seed='a' is not an integer"):
        fixed_latents(2, 8, seed="a")


def seeded_tiny_dcgan() -> DCGAN:
    torch.manual_seed(0)
    return tiny_dcgan()


def test_labels_cycle_through_the_given_ids() -> None:
    assert cycled_labels(5, range(3)).tolist() == [0, 1, 2, 0, 1]
    assert cycled_labels(4, torch.tensor([7, 2])).tolist() == [7, 2, 7, 2]
    assert cycled_labels(2, [4, 5, 6]).tolist() == [4, 5]
    assert cycled_classes(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0] and cycled_classes(7, 0) is None
    assert class_labels(3, 5, [2, 0], None).tolist() == [2, 0, 2, 0, 2]
    drawn = class_labels(3, 50, None, torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {0, 1, 2}
    assert torch.equal(drawn, class_labels(3, 50, None, torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError, match=r"classes \[3\] are outside 0..2"):
        class_labels(3, 4, [0, 3], None)
    with pytest.raises(ConfigError, match="not class-conditional"):
        class_labels(0, 4, [1], None)


# ------------------------------------------------------------------------------------------------- truncation
def test_truncation_keeps_latents_within_the_threshold() -> None:
    plain = draw_latents(500, 16, torch.Generator().manual_seed(0))
    truncated = draw_latents(500, 16, torch.Generator().manual_seed(0), truncation=0.5)
    assert plain.abs().max() > 2 and truncated.abs().max() <= 0.5
    inside = plain.abs() <= 0.5
    assert torch.equal(truncated[inside], plain[inside])  # only the entries outside are redrawn
    assert torch.equal(truncated, fixed_latents(500, 16, seed=0, truncation=0.5))
    assert truncate(plain * 10, 0.1).abs().max() <= 0.1
    with pytest.raises(ConfigError, match="positive threshold"):
        fixed_latents(2, 16, seed=0, truncation=-1)


# -------------------------------------------------------------------------------------------- batched sampling
def test_batched_generation_equals_one_shot_generation() -> None:
    model = seeded_tiny_dcgan().eval()
    one_shot = model.generate(10, seed=5)
    latents, labels = seeded_inputs(model, 10, seed=5)
    assert labels is None and latents.shape == (10, 8)
    batches = list(generate_in_batches(model, latents, labels, batch_size=4))
    assert [len(images) for images, _ in batches] == [4, 4, 2]
    torch.testing.assert_close(torch.cat([images for images, _ in batches]), one_shot, rtol=0, atol=1e-6)


def test_batched_generation_keeps_classes_and_truncation_of_one_shot() -> None:
    model = tiny_biggan(G_eval_mode=True)
    one_shot = model.generate(7, classes=[2, 0], truncation=0.5, seed=1)
    latents, labels = seeded_inputs(model, 7, [2, 0], truncation=0.5, seed=1)
    assert labels.tolist() == [2, 0, 2, 0, 2, 0, 2] and latents.abs().max() <= 0.5
    batches = list(generate_in_batches(model, latents, labels, batch_size=3))
    assert torch.cat([batch_labels for _, batch_labels in batches]).tolist() == labels.tolist()
    torch.testing.assert_close(torch.cat([images for images, _ in batches]), one_shot, rtol=0, atol=1e-5)


def test_sampling_settings_are_arguments_and_the_hparams_stay_the_defaults() -> None:
    model = tiny_biggan(G_eval_mode=False)
    z, labels = seeded_inputs(model, 6, seed=0)
    batch_statistics = model.generate(z=z, labels=labels)
    stored_statistics = model.generate(z=z, labels=labels, G_eval_mode=True)
    assert not torch.allclose(batch_statistics, stored_statistics, atol=1e-4)
    assert model.hparams.G_eval_mode is False  # the call did not change the model
    # Eval mode: an image depends on its latent only, so a part of the batch gives the same images.
    torch.testing.assert_close(model.generate(z=z[:2], labels=labels[:2], G_eval_mode=True), stored_statistics[:2])
    torch.testing.assert_close(model.generate(z=z, labels=labels, G_eval_mode=None), batch_statistics)
    with pytest.raises(ConfigError, match="standing_stats=-1 must be an integer >= 0"):
        model.generate(z=z, labels=labels, standing_stats=-1)
    with pytest.raises(ConfigError, match="G_eval_mode=True does not apply to a DCGAN: remove G_eval_mode="):
        seeded_tiny_dcgan().generate(2, G_eval_mode=True)


def test_batched_translation_translates_each_batch() -> None:
    model = tiny_cyclegan()
    images = torch.rand(5, 1, 16, 16) * 2 - 1
    batches = list(translate_in_batches(model, images.split(2), "BtoA"))
    assert [len(b) for b in batches] == [2, 2, 1]
    torch.testing.assert_close(torch.cat(batches), model.translate(images, "BtoA"), rtol=0, atol=1e-6)
    assert torch.cat(batches).abs().max() <= 1
