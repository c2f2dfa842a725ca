"""No training iteration between two log steps waits for the device: counted on the CPU with the default stack.

Each model trains a few iterations through ``ganzoo.train.train`` with its whole default callback stack
(progress bar, non-finite guard, checkpoint callbacks, sheets, metrics log, CSV logger) and
:class:`bench.host_syncs.HostSyncWatch`, which counts the tensor-to-host conversions (``item``, ``tolist``,
``bool``, ``cpu``, ...) made in the iterations where nothing is logged, sampled, evaluated or saved. On a GPU
each of those would make the host wait for the device; ``python -m bench.gpu_check`` runs the same watch
there under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganzoo.models.dcgan import DCGAN
from ganzoo.train import compose_config, train

#: ADA adjusting p every other iteration (so watched iterations adjust it): its controller must not sync either.
ADA = ["model.augment=ada", "model.augment_options.interval=2"]

#: Tiny versions of each model's CPU recipe: the networks' size does not change the host's work per iteration.
#: Each augments its discriminator's inputs (DiffAugment or ADA), which must not sync either.
MODELS = {
    "dcgan": ["model.generator.ngf=4", "model.discriminator.ndf=4", "data.batch_size=4", *ADA],
    "cyclegan": [
        "experiment=cyclegan_fmnist",
        "model.generator.ngf=4",
        "model.generator.n_blocks=1",
        "model.discriminator.ndf=4",
        "data.batch_size=2",
        *ADA,
    ],
    "pix2pix": [
        "experiment=pix2pix_fmnist",
        "model.generator.num_downs=6",  # a level with dropout, whose masks are seeded every iteration
        "data.image_size=64",
        "model.generator.ngf=4",
        "model.discriminator.ndf=4",
        "data.batch_size=2",
        "model.augment=diffaug",
    ],
    "biggan": [
        "experiment=biggan_fmnist",
        "model.generator.ch=4",
        "model.discriminator.ch=4",
        "model.batch_size=2",
        "model.augment=diffaug",
    ],
}


def watched_run(tmp_path: Path, data_dir: Path, overrides: list[str], steps: int = 14) -> dict:
    report = tmp_path / "syncs.json"
    cfg = compose_config(
        [
            *overrides,
            f"paths.data_dir={data_dir}",
            "trainer.accelerator=cpu",
            f"trainer.max_steps={steps}",
            "trainer.log_every_n_steps=5",
            "~metrics",
            "+callbacks.host_sync_watch._target_=bench.host_syncs.HostSyncWatch",
            f"+callbacks.host_sync_watch.report={report}",
        ],
        output_dir=str(tmp_path / "run"),
    )
    train(cfg)
    return json.loads(report.read_text())


@pytest.mark.parametrize("model", sorted(MODELS))
def test_iterations_between_log_steps_make_no_host_sync(model: str, tiny_data_dir: Path, tmp_path: Path) -> None:
    result = watched_run(tmp_path, tiny_data_dir, MODELS[model])
    # 14 iterations, logging every 5: 2-4, 6-9 and 11-13 are watched (the first, the log steps and the last not).
    assert result["watched"] >= 9
    assert result["violations"] == []


class SyncingDCGAN(DCGAN):
    """A DCGAN that reads its loss on the host every iteration, as a naive training step would."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        super().training_step(batch, batch_idx)
        if float(self.step_values["train/loss_d"]) > 1e6:
            raise RuntimeError("diverged")


def test_the_watch_finds_a_host_sync_in_the_training_step(tiny_data_dir: Path, tmp_path: Path) -> None:
    overrides = [*MODELS["dcgan"], f"model._target_={SyncingDCGAN.__module__}.SyncingDCGAN"]
    result = watched_run(tmp_path, tiny_data_dir, overrides, steps=8)
    assert result["watched"] >= 4
    assert len(result["violations"]) == result["watched"]
    assert all("Tensor.__float__ at tests/unit/test_host_syncs.py" in v for v in result["violations"]), result[
        "violations"
    ]
