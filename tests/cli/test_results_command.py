"""``make results`` (``python -m bench.experiments``): the README's result tables and sheets come from real runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from bench.experiments import EXPERIMENTS, column_labels, evaluations, fmt, read_metrics, replace_between_markers
from PIL import Image

from ganzoo.callbacks import ClassSheet, InterpolationSheet, SampleGrid, TranslationGrid
from tests.conftest import REPO, cli_env
from tests.data.writers import write_fashion_mnist


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_smoke_run_writes_tables_sheets_and_commit_into_a_readme_copy(tmp_path: Path, evaluator_cache: Path) -> None:
    """The whole pipeline on tiny Fashion-MNIST: a real training run and ``ganzoo.evaluate`` in subprocesses, then
    the table, the enlarged sheet, the commit and the evaluator's accuracy in a README copy; the real README and
    docs/ stay untouched."""
    data = tmp_path / "data"
    write_fashion_mnist(data, n_train=256, n_test=64)
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    real_readme = _digest(REPO / "README.md")
    docs = tmp_path / "docs"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.experiments", "--smoke", "--only", "dcgan_fmnist"]
        + ["--runs-dir", str(tmp_path / "runs"), "--docs-dir", str(docs), "--readme", str(readme)],
        cwd=REPO,
        env=cli_env(data, GANZOO_CACHE=str(evaluator_cache), PYTHONPATH=f"{REPO}:{REPO / 'src'}"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _digest(REPO / "README.md") == real_readme

    text = readme.read_text()
    begin, end = "<!-- results:dcgan_fmnist:begin -->", "<!-- results:dcgan_fmnist:end -->"
    block = text[text.index(begin) : text.index(end)]
    # debug=smoke evaluates at step 0, every 2 iterations and at the end (3).
    assert "| iteration | 0 (untrained) | 2 | 3 (end) |" in block
    rows = read_metrics(tmp_path / "runs" / "dcgan_fmnist" / "csv" / "metrics.csv")
    logged_fid = evaluations(rows)[3]["val/fid_fmnist"]
    fid_row = next(line for line in block.splitlines() if line.startswith("| `val/fid_fmnist`"))
    assert fid_row.split("|")[-2].strip() == fmt(logged_fid)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert f"commit {commit.stdout.strip()}" in block
    assert "smoke settings: the numbers mean nothing" in block
    assert "`python -m ganzoo.evaluate ckpt=<run>/checkpoints/last.ckpt` prints `val/fid_fmnist = " in block
    assert "](docs/images/dcgan_fmnist_default.png)" in block
    # Other experiments' blocks are left as they were.
    for name in ("cyclegan_fmnist", "biggan_fmnist"):
        marker = f"<!-- results:{name}:begin -->"
        original = (REPO / "README.md").read_text()
        assert (
            text[text.index(marker) :].split("<!-- results:")[1]
            == original[original.index(marker) :].split("<!-- results:")[1]
        )
    evaluator = text[text.index("<!-- results:evaluator:begin -->") : text.index("<!-- results:evaluator:end -->")]
    assert "`evaluator/accuracy_fmnist`" in evaluator and "%**" in evaluator

    sheet = tmp_path / "runs" / "dcgan_fmnist" / "samples" / "last.png"
    with Image.open(sheet) as small, Image.open(docs / "images" / "dcgan_fmnist_default.png") as large:
        assert large.size == (2 * small.width, 2 * small.height)
        assert large.resize(small.size, Image.Resampling.NEAREST).tobytes() == small.tobytes()

    results = json.loads((docs / "results.json").read_text())["dcgan_fmnist"]
    assert results["commit"] == commit.stdout.strip() and results["wall_s"] > 0
    assert results["evaluations"]["3"]["val/fid_fmnist"] == logged_fid
    assert results["evaluate"]["key"] == "val/fid_fmnist"
    assert results["machine"]["cpu_count"] >= 1 and results["machine"]["device"] == "cpu"


def test_the_sheets_the_readme_shows_are_the_folders_the_callbacks_write() -> None:
    folders = {
        SampleGrid.name,
        ClassSheet.name,
        TranslationGrid.name,
        InterpolationSheet(every_n_steps=1, space="class").name,
    }
    for experiment in EXPERIMENTS.values():
        for sheet in experiment.sheets:
            assert sheet.source.split("/")[0] in folders, sheet.source


def test_tables_read_train_and_evaluation_rows_of_one_step_numbering(tmp_path: Path) -> None:
    """Training and evaluation rows may share a step (or come in separate rows, as Lightning writes them); the
    evaluation columns are the steps with val/ values, a resumed run's later row wins, and the step may be a float."""
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,step,train/loss_g,val/fid_fmnist,val/is_fmnist\n"
        "0,0,,600.0,1.0\n"
        "0,0,2.5,,\n"
        "0,250,1.5,,\n"
        "0,250.0,,80.0,\n"
        "0,250,,,3.5\n"
        "1,300,,70.0,4.0\n"
        "1,300,,65.0,\n"
    )
    evals = evaluations(read_metrics(path))
    assert evals == {
        0: {"val/fid_fmnist": 600.0, "val/is_fmnist": 1.0},
        250: {"val/fid_fmnist": 80.0, "val/is_fmnist": 3.5},
        300: {"val/fid_fmnist": 65.0, "val/is_fmnist": 4.0},
    }
    assert column_labels(list(evals)) == ["0 (untrained)", "250", "300 (end)"]
    text = "a\n<!-- results:x:begin -->\nold\n<!-- results:x:end -->\nb\n"
    assert replace_between_markers(text, "x", "new") == "a\n<!-- results:x:begin -->\nnew\n<!-- results:x:end -->\nb\n"
