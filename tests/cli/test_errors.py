"""Bad input gives one clear line on stderr that names the fix, and a non-zero exit, never a traceback: one case of
each kind through the real entry points (the messages of every case: tests/unit/test_errors.py)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli_env, run_cli


def error_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1]


def test_unknown_config_key_fails_before_training(tmp_path: Path) -> None:
    proc = run_cli("train", "model.lrr=1", f"hydra.run.dir={tmp_path / 'run'}", env=cli_env(tmp_path), check=False)
    assert proc.returncode != 0
    assert "Could not override 'model.lrr'" in proc.stderr and "Key 'lrr' is not in struct" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bad_value_inside_instantiation_is_one_line(tmp_path: Path) -> None:
    # Hydra wraps errors raised while building objects; the user still gets the one line.
    proc = run_cli("train", "data.image_size=48", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    line = error_line(proc)
    assert proc.returncode == 1 and line.startswith("error: ")
    assert "image_size = 4 * 2^k" in line and "set data.image_size=" in line


def test_sample_bad_option_with_a_real_checkpoint(dcgan_smoke_run: Path, tmp_path: Path) -> None:
    checkpoint = dcgan_smoke_run / "checkpoints" / "last.ckpt"
    args = [f"ckpt={checkpoint}", "n=abc", f"grid={tmp_path / 'g.png'}", f"out={tmp_path / 's.npz'}"]
    proc = run_cli("sample", *args, check=False)
    line = error_line(proc)
    assert proc.returncode == 1 and line.startswith("error: ")
    assert "n='abc' is not a positive integer" in line
    assert not (tmp_path / "s.npz").exists()
