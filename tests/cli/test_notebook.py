"""notebooks/quickstart.ipynb runs top to bottom on a CPU (with a shorter training run)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ganzoo.data.fashion_mnist import SYSTEM_DIR
from tests.conftest import REPO

#: The training cell's settings and the shorter ones the test runs.
SHORTENED = {
    "trainer.max_steps=150": "trainer.max_steps=20",
    "callbacks.sample_grid.every_n_steps=50": "callbacks.sample_grid.every_n_steps=10",
    "metrics.evaluation.num_samples=1000": "metrics.evaluation.num_samples=200",
}


@pytest.mark.skipif(not Path(SYSTEM_DIR).is_dir(), reason="needs Fashion-MNIST (`make install` adds it)")
def test_quickstart_notebook_runs(
    tmp_path: Path, fashion_mnist_evaluator: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "GANZOO_CACHE", str(fashion_mnist_evaluator)
    )  # the kernel inherits it: one evaluator per session
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    # Every cell runs as written, but the training run is shortened: what it learns in 150 steps is
    # tests/learning's subject, and here it would only cost time.
    (training,) = [c for c in notebook.cells if c.cell_type == "code" and "trainer.max_steps=150" in c.source]
    for long, short in SHORTENED.items():
        assert long in training.source, f"the notebook no longer says {long!r}: update SHORTENED"
        training.source = training.source.replace(long, short)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2  # the sample grid and the interpolation sheet
    assert (tmp_path / "outputs" / "quickstart" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "outputs" / "quickstart" / "grid.png").is_file()  # ganzoo.save_grid of the loaded model
    assert "val/fid_fmnist" in str(outputs)  # the run's returned metrics include its final FID
