"""The mistakes a new user makes, each answered by one ``error: ...`` line that names the key or file and a fix.

Every case runs the body of a real entry point (train, sample, evaluate, translate) in this process, through its
own ``main`` (tests/conftest.py's ``entry_point``), and checks: exit status 1, no traceback, the one line's key
words (and words it must not hold, such as a remedy that would not work), that nothing was written where nothing
should be, and that a suggested override gets past the error. Configuration mistakes must be reported before any
data is read or any step is trained. That a real ``python -m ganzoo.<module>`` process prints the line and exits
with status 1 (Hydra's command line and logging around ``main``) is checked in subprocesses by tests/cli/test_errors.py
(train, sample), tests/cli/test_evaluate.py and tests/cli/test_cyclegan.py (translate).
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganzoo.cli import CONFIG_DIR
from tests.conftest import QUIET, REPO, SMALL_NETS, EntryPointRun
from tests.data.writers import write_image_folder

EntryPoint = Callable[..., EntryPointRun]

#: No Inception weights anywhere (an empty torch.hub cache, downloads off): what an offline machine has.
NO_INCEPTION = "metrics.evaluation.extractor.download=false"


@dataclass(frozen=True)
class Mistake:
    """One command with a mistake in it. ``{ckpt}``, ``{tmp}`` and ``{data}`` in ``args`` are filled in."""

    module: str
    args: tuple[str, ...]
    expected: tuple[str, ...]
    #: Words the line must not hold: a remedy that would not work for this input.
    absent: tuple[str, ...] = ()
    #: Paths (relative to the test's tmp folder) that must not exist afterwards.
    not_written: tuple[str, ...] = ()
    #: Where the data comes from: the shared tiny datasets, or an empty folder.
    data: str = "tiny"
    #: The override the line suggests; running with it must get past this error.
    fix: str | None = None
    #: Seconds within which a configuration mistake must be reported: in this process a case takes under one (about
    #: half a second at most, importing its entry point's modules included), which leaves room for a slow machine.
    within: float = 10.0


TRAIN_RUN = ("hydra.run.dir={tmp}/run",)
NOTHING_TRAINED = ("run/checkpoints", "run/samples")

MISTAKES = {
    # The headline command on a machine with neither the dataset nor network: the data is the first thing said.
    "headline_offline": Mistake(
        "train",
        ("model=cyclegan", "data=horse2zebra", *TRAIN_RUN),
        ("horse2zebra/trainA does not exist", "python -m ganzoo.data.download horse2zebra", "data.data_dir="),
        absent=("Inception",),
        not_written=NOTHING_TRAINED,
        data="empty",
    ),
    # Unlabelled data and no Inception weights: every way on, and not the classifier, which cannot work here.
    "no_evaluator_unlabelled": Mistake(
        "train",
        ("model=cyclegan", "data=horse2zebra", NO_INCEPTION, *TRAIN_RUN),
        ("Inception weights", "metrics.evaluation.extractor.weights_path=", "'~metrics'", "download https://"),
        absent=("metrics=classifier",),
        not_written=NOTHING_TRAINED,
    ),
    # data=unpaired and data=image_folder select metrics=inception by themselves, as horse2zebra does.
    "unpaired_selects_inception": Mistake(
        "train",
        ("model=cyclegan", "data=unpaired", "data.data_dir={data}/horse2zebra", NO_INCEPTION, *TRAIN_RUN),
        ("Inception weights", "'~metrics'"),
        absent=("metrics=classifier",),
        not_written=NOTHING_TRAINED,
    ),
    # pix2pix on data without pairs: refused before the evaluator or anything else is built.
    "pix2pix_on_unpaired_data": Mistake(
        "train",
        ("model=pix2pix", "data=fmnist_domains", *TRAIN_RUN),
        ("model=pix2pix learns from aligned pairs and data=fmnist_ab is not paired", "data=fmnist_edges"),
        not_written=NOTHING_TRAINED,
    ),
    # Paired metrics on data without pairs: refused before the evaluator is trained.
    "paired_metrics_on_unpaired_data": Mistake(
        "train",
        ("experiment=cyclegan_fmnist", "data.batch_size=4", "metrics.evaluation.metrics=[fid,l1,psnr]", *TRAIN_RUN),
        ("metrics.evaluation.metrics has ['l1', 'psnr']", "and data=fmnist_ab has none", "remove them"),
        not_written=NOTHING_TRAINED,
    ),
    "image_folder_selects_inception": Mistake(
        "train",
        ("data=image_folder", NO_INCEPTION, *TRAIN_RUN),
        ("Inception weights", "'~metrics'"),
        absent=("metrics=classifier",),
        not_written=NOTHING_TRAINED,
    ),
    "labelled_data_offers_classifier": Mistake(
        "train",
        ("metrics=inception", NO_INCEPTION, *TRAIN_RUN),
        ("Inception weights", "use metrics=classifier", "'~metrics'"),
        not_written=NOTHING_TRAINED,
    ),
    "classifier_on_unlabelled": Mistake(
        "train",
        ("model=cyclegan", "data=horse2zebra", "metrics=classifier", *TRAIN_RUN),
        ("horse2zebra data is unlabeled", "metrics=inception", "'~metrics'"),
        not_written=NOTHING_TRAINED,
    ),
    "negative_lr": Mistake(
        "train",
        ("model.lr=-1", *TRAIN_RUN),
        ("model.lr=-1", "positive number", "model.lr=2e-4"),
        not_written=NOTHING_TRAINED,
    ),  # fmt: skip
    "lr_not_a_number": Mistake(
        "train",
        ("model.lr=fast", *TRAIN_RUN),
        ("model.lr='fast'", "model.lr=2e-4"),
        not_written=NOTHING_TRAINED,
    ),  # fmt: skip
    "biggan_beta": Mistake(
        "train",
        ("model=biggan", "model.D_B2=1", *TRAIN_RUN),
        ("model.D_B2=1", "[0, 1)", "model.D_B2=0.999"),
        not_written=NOTHING_TRAINED,
    ),  # fmt: skip
    "max_steps_not_a_number": Mistake(
        "train",
        ("trainer.max_steps=abc", *TRAIN_RUN),
        ("trainer.max_steps='abc'", "trainer.max_steps=1000"),
        not_written=NOTHING_TRAINED,
    ),  # fmt: skip
    "resume_other_architecture": Mistake(
        "train",
        # The checkpoint's networks, so that the image size is the only difference.
        ("trainer.max_steps=6", "data.image_size=64", *SMALL_NETS, "ckpt_path={ckpt}", *TRAIN_RUN),
        ("data.image_size=32 (now 64)", "data.image_size=32", "without ckpt_path"),
        absent=("size mismatch",),
        not_written=NOTHING_TRAINED,
    ),
    "too_few_images": Mistake(
        "train",
        ("data=image_folder", "data.data_dir={tmp}/few", "data.image_size=32", "~metrics", *TRAIN_RUN),
        ("fewer than data.batch_size=64", "data.drop_last=false"),
        not_written=("run/checkpoints",),
        fix="data.drop_last=false",
    ),
    "sample_without_ckpt": Mistake(
        "sample",
        ("out={tmp}/s.npz",),
        ("ckpt= is required", "python -m ganzoo.sample ckpt="),
        not_written=("s.npz",),
    ),  # fmt: skip
    "translate_without_anything": Mistake(
        "translate", (), ("ckpt=, input=, output= are required", "python -m ganzoo.translate ckpt=")
    ),
    "sample_out_unwritable": Mistake(
        "sample",
        ("ckpt={ckpt}", "n=4", "out={tmp}/file/s.npz"),
        ("out={tmp}/file/s.npz cannot be written",),
    ),  # fmt: skip
    "sample_grid_unwritable": Mistake(
        "sample",
        ("ckpt={ckpt}", "n=4", "out={tmp}/s.npz", "grid={tmp}/file/g.png"),
        ("grid=", "cannot be written"),
        not_written=("s.npz",),
    ),  # fmt: skip
    "sample_grid_not_png": Mistake(
        "sample",
        ("ckpt={ckpt}", "n=4", "out={tmp}/s.npz", "grid={tmp}/g.jpg"),
        ("grid={tmp}/g.jpg", ".png", "grid=grid.png"),
        not_written=("s.npz",),
    ),  # fmt: skip
    "translate_output_unwritable": Mistake(
        "translate",
        ("ckpt={ckpt}", "input={tmp}/few", "output={tmp}/file/out"),
        ("output={tmp}/file/out cannot be written",),
    ),  # fmt: skip
    "evaluate_report_unwritable": Mistake(
        "evaluate",
        ("ckpt={ckpt}", "out={tmp}/file/m.json"),
        ("out={tmp}/file/m.json cannot be written",),
    ),  # fmt: skip
    "evaluate_images_missing": Mistake(
        "evaluate",
        ("images={tmp}/missing.npz", "data=fashion_mnist", "out={tmp}/m.json"),
        ("images={tmp}/missing.npz does not exist",),
        not_written=("m.json",),
    ),  # fmt: skip
    "evaluate_five_channels": Mistake(
        "evaluate",
        ("images={tmp}/five.npz", "data=fashion_mnist", "metrics=classifier", "out={tmp}/m.json"),
        ("{tmp}/five.npz", "1 or 3 channels"),
        not_written=("m.json",),
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_gets_one_line(
    name: str, entry_point: EntryPoint, tiny_checkpoint: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    mistake = MISTAKES[name]
    (tmp_path / "file").write_text("a file where a folder is needed")
    write_image_folder(tmp_path / "few", n=10, size=36)
    np.savez(tmp_path / "five.npz", x=np.zeros((4, 5, 8, 8), np.uint8))
    data = tiny_data_dir if mistake.data == "tiny" else tmp_path / "no-data"
    env = {"GANZOO_DATA": str(data), "TORCH_HOME": str(tmp_path / "torch"), "GANZOO_CACHE": str(tmp_path / "cache")}
    fill = {"ckpt": str(tiny_checkpoint), "tmp": str(tmp_path), "data": str(tiny_data_dir)}
    args = [arg.format(**fill) for arg in mistake.args]

    # Loaders that earlier tests left behind are collected now, not inside the timed call: each of their worker
    # processes can take seconds to shut down.
    gc.collect()
    start = time.monotonic()
    line = entry_point(mistake.module, *args, **env).error_line()
    elapsed = time.monotonic() - start
    for words in mistake.expected:
        assert words.format(**fill) in line, line
    for words in mistake.absent:
        assert words not in line, line
    for path in mistake.not_written:
        assert not (tmp_path / path).exists(), path
    assert elapsed < mistake.within, f"{elapsed:.1f} s: the mistake was found late"

    if mistake.fix is not None:  # the suggested override is one Hydra accepts, and it gets past the error
        assert mistake.fix in line
        run = entry_point(mistake.module, *args, mistake.fix, *QUIET, "trainer.max_steps=1")
        assert run.code == 0, run.err[-3000:]
        assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_evaluate_a_run_started_without_metrics(
    entry_point: EntryPoint, tiny_checkpoint: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """A ``'~metrics'`` + ``debug=smoke`` run records only smoke's partial metrics; evaluate falls back to the
    data's default evaluator (the Fashion-MNIST classifier) and keeps smoke's sample count."""
    out = tmp_path / "report.json"
    env = {"GANZOO_DATA": str(tiny_data_dir), "GANZOO_CACHE": str(tmp_path / "cache")}
    run = entry_point("evaluate", f"ckpt={tiny_checkpoint}", f"out={out}", "device=cpu", **env)
    assert run.code == 0, run.err[-3000:]
    report = OmegaConf.load(out)
    assert report.extractor == "fmnist" and report.num_samples == 32 and "val/fid_fmnist" in report.metrics


#: Overrides that the error messages under src/ suggest: group.key=, with the group a config of ganzoo's.
SUGGESTION = re.compile(r"\b((?:data|model|trainer|metrics|callbacks|paths|logger)\.[A-Za-z_][\w.]*)=")

#: Compositions that together hold every data, model and metrics option a message may refer to.
COMPOSITIONS = (
    [],
    ["metrics=inception"],
    ["model=cyclegan", "data=horse2zebra"],
    ["model=cyclegan", "data=paired"],
    ["model=biggan", "data=cifar10"],
    ["data=image_folder"],
    ["trainer=ddp_cpu"],
)


def test_every_suggested_override_exists() -> None:
    """Each ``<group>.<key>=`` an error message (or docstring) under src/ suggests is a key of a composed config,
    so Hydra accepts it without ``+`` (``data.drop_last=false`` once was not)."""
    suggested = {
        key
        for path in (REPO / "src" / "ganzoo").rglob("*.py")
        for key in SUGGESTION.findall(path.read_text())
        if not key.endswith(".")
    }
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        # Unresolved: paths.output_dir reads Hydra's run dir, which only a running job has.
        configs = [OmegaConf.to_container(compose("train", overrides=o), resolve=False) for o in COMPOSITIONS]
    unknown = sorted(key for key in suggested if not any(_has_key(c, key.split(".")) for c in configs))
    assert not unknown, f"suggested overrides that Hydra would reject: {unknown}"


def _has_key(config: object, keys: list[str]) -> bool:
    for key in keys:
        if not isinstance(config, dict) or key not in config:
            return False
        config = config[key]
    return True
