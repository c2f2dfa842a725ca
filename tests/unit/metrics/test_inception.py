"""InceptionV3 features from a local weights file: the same values as torchmetrics', unsafe files refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.inception import InceptionScore

from ganzoo.images import to_uint8
from ganzoo.metrics import ClassStatistics, FeatureMetrics, InceptionFeatures
from ganzoo.metrics.inception import InceptionWeightsError, resolve_weights


def test_inception_weights_path_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InceptionWeightsError, match=r"nowhere.pth does not exist\): download https://"):
        resolve_weights(str(tmp_path / "nowhere.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InceptionWeightsError, match="downloads are switched off"):
        resolve_weights(None, download=False)
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

    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(random_inception_weights))
    fid.update(real, real=True)
    fid.update(fake.expand(-1, 3, -1, -1), real=False)
    logits = NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"], str(random_inception_weights))
    inception_score = InceptionScore(feature=logits, splits=2)
    inception_score.update(fake.expand(-1, 3, -1, -1))
    torch.manual_seed(0)
    assert values["fid"] == pytest.approx(float(fid.compute()), rel=1e-5) and values["fid"] > 0
    assert values["is"] == pytest.approx(float(inception_score.compute()[0]), rel=1e-5)
