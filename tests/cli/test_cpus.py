"""A bad OMP_NUM_THREADS stops an entry point with one line naming the fix (the threads each entry point sets:
tests/unit/test_cpus.py)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli_env, run_cli


def test_bad_omp_num_threads_stops_an_entry_point_with_one_line(tmp_path: Path) -> None:
    proc = run_cli("sample", f"hydra.run.dir={tmp_path}", env=cli_env(OMP_NUM_THREADS="0"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: OMP_NUM_THREADS='0' must be a positive integer (the torch threads of each process): e.g. "
        "OMP_NUM_THREADS=1, or `unset OMP_NUM_THREADS` to let ganzoo choose"
    )
