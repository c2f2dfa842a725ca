"""ganzoo as an installed package: a wheel built from the checkout, installed into a folder of its own and used
from an unrelated directory through its console scripts, with no source tree on the path.

One wheel and one short training run serve the whole module; the help texts and config compositions run side
by side to keep it quick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("ganzoo-train", "ganzoo-sample", "ganzoo-evaluate", "ganzoo-translate", "ganzoo-download")
# Cheap and quiet training: 3 iterations of a small batch, evaluated at the end only.
SMOKE = ("debug=smoke", "trainer.accelerator=cpu", "data.batch_size=16", "metrics.at_start=false")


@dataclass(frozen=True)
class Installed:
    """A ``pip install --target`` of the wheel: ``site`` holds the packages, ``site/bin`` the console scripts."""

    site: Path
    cwd: Path  # an unrelated working directory, outside the checkout
    data_dir: Path
    cache_dir: Path

    def script(self, name: str) -> str:
        return str(self.site / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        """The caller's environment with the installed folder as the only addition to Python's path."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WANDB_", "GANZOO_", "HYDRA_")) and k not in ("PYTHONPATH", "PYTHONHOME")
        }
        env.update(
            PYTHONPATH=str(self.site),
            GANZOO_DATA=str(self.data_dir),
            GANZOO_CACHE=str(self.cache_dir),
            HYDRA_FULL_ERROR="0",
        )
        env.update(extra)
        return env

    def popen(self, command: Sequence[str], **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            list(command),
            cwd=self.cwd,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, command: Sequence[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(command), cwd=self.cwd, env=self.env(**env), capture_output=True, text=True, timeout=timeout
        )
        _check(command, proc.returncode, proc.stdout, proc.stderr)
        return proc


def _check(command: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
    if returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({returncode}):\n{stdout[-3000:]}\n{stderr[-5000:]}")


def _run_together(
    installed: Installed, commands: dict[str, tuple[list[str], dict[str, str]]]
) -> dict[str, tuple[str, str]]:
    """Run ``commands`` (name: (command, extra environment)) at the same time; (stdout, stderr) by name."""
    procs = {name: (command, installed.popen(command, **env)) for name, (command, env) in commands.items()}
    outputs = {}
    for name, (command, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        _check(command, proc.returncode, stdout, stderr)
        outputs[name] = (stdout, stderr)
    return outputs


def _pip(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--disable-pip-version-check", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    _check(["pip", *args], proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def installed(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources, and stale files left in
    # build/ would end up in the wheel.
    source = root / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    _pip("wheel", "--no-build-isolation", "-w", str(root / "dist"), str(source))
    (wheel,) = (root / "dist").glob("ganzoo-*.whl")
    _pip("install", "--target", str(root / "site"), str(wheel))
    cwd = root / "elsewhere"
    cwd.mkdir()
    # A user's own config folder (an experiment on top of ganzoo's groups), next to their runs.
    shutil.copytree(REPO / "examples" / "my_conf", cwd / "my_conf")
    return Installed(site=root / "site", cwd=cwd, data_dir=tiny_data_dir, cache_dir=root / "cache")


@pytest.fixture(scope="module")
def run_dir(installed: Installed) -> Path:
    """A short training run through ``ganzoo-train`` of the user's experiment, found through GANZOO_CONFIG_PATH,
    written to a run directory relative to the working directory."""
    command = [installed.script("ganzoo-train"), "experiment=my_dcgan", *SMOKE, "hydra.run.dir=runs/smoke"]
    installed.run(command, GANZOO_CONFIG_PATH="my_conf")
    return installed.cwd / "runs" / "smoke"


def test_the_wheel_holds_code_configs_and_scripts(installed: Installed) -> None:
    shipped = sorted(p.relative_to(REPO / "src").as_posix() for p in (REPO / "src" / "ganzoo" / "conf").rglob("*.yaml"))
    assert len(shipped) > 40  # every group, including nested ones (hydra/launcher, hydra/help)
    installed_configs = sorted(
        p.relative_to(installed.site).as_posix() for p in (installed.site / "ganzoo" / "conf").rglob("*.yaml")
    )
    assert installed_configs == shipped
    for name in SCRIPTS:
        assert os.access(installed.script(name), os.X_OK), name

    # Python finds ganzoo and its Hydra plugin in the installed folder, not in the checkout.
    code = "import ganzoo, hydra_plugins.ganzoo_searchpath as p; print(ganzoo.__file__); print(p.__file__)"
    files = installed.run([sys.executable, "-c", code]).stdout.split()
    assert [Path(f).is_relative_to(installed.site) for f in files] == [True, True], files


def test_train_sample_evaluate_through_console_scripts(installed: Installed, run_dir: Path) -> None:
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file() and (run_dir / "csv" / "metrics.csv").is_file()
    assert (run_dir / "samples" / "last.png").is_file()
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.trainer.max_steps == 3 and cfg.task_name == "my_dcgan" and cfg.model.generator.ngf == 32

    installed.run([installed.script("ganzoo-sample"), f"ckpt={checkpoint}", "n=20", "out=samples.npz", "grid=g.png"])
    x = np.load(installed.cwd / "samples.npz")["x"]
    assert x.dtype == np.uint8 and x.shape == (20, 1, 32, 32) and x.std() > 0
    assert (installed.cwd / "g.png").is_file()

    # The run's own evaluation (classifier metrics on the tiny Fashion-MNIST, cached by the training run).
    proc = installed.run([installed.script("ganzoo-evaluate"), f"ckpt={checkpoint}", "out=report.json"])
    report = json.loads((installed.cwd / "report.json").read_text())
    assert report["step"] == 3 and np.isfinite(report["metrics"]["val/fid_fmnist"])
    assert "val/fid_fmnist = " in proc.stdout


def test_help_of_each_console_script(installed: Installed) -> None:
    commands = {name: ([installed.script(name), "--help"], {}) for name in SCRIPTS}
    # Train's groups include the experiments of the user's folders; a folder that does not exist is named in
    # one warning line, and the others still count.
    missing = installed.cwd / "missing"
    commands["ganzoo-train"] = (commands["ganzoo-train"][0], {"GANZOO_CONFIG_PATH": f"{missing}{os.pathsep}my_conf"})
    outputs = _run_together(installed, commands)
    helps = {name: stdout for name, (stdout, _) in outputs.items()}

    train = helps["ganzoo-train"]
    assert "Usage: ganzoo-train" in train and "ganzoo-train experiment=dcgan_cifar10" in train  # usage, examples
    assert "trainer: cpu, ddp, " in train and "GANZOO_CONFIG_PATH" in train
    experiments = next(line for line in train.splitlines() if line.startswith("experiment:"))
    assert "dcgan_fmnist" in experiments and "my_dcgan" in experiments
    assert f"warning: GANZOO_CONFIG_PATH names {missing}, which is not a folder" in outputs["ganzoo-train"][1]

    conf = installed.site / "ganzoo" / "conf"
    for name in ("sample", "evaluate", "translate"):
        text = helps[f"ganzoo-{name}"]
        assert f"Usage: ganzoo-{name} " in text and f"  ganzoo-{name} ckpt=" in text, text  # usage and examples
        options = [key for key in OmegaConf.load(conf / f"{name}.yaml") if key not in ("defaults", "hydra")]
        assert [key for key in options if f"  {key}=" not in text] == [], text  # every option, described
        assert "experiment:" not in text and "trainer:" not in text  # not train's groups
    assert "usage:" in helps["ganzoo-download"] and "horse2zebra" in helps["ganzoo-download"]


def test_a_users_config_folder_on_the_command_line(installed: Installed) -> None:
    """examples/my_conf adds an experiment to ganzoo's groups (the env var form is the training run's)."""
    command = [installed.script("ganzoo-train"), "experiment=my_dcgan", "hydra.searchpath=[file://my_conf]"]
    cfg = OmegaConf.create(installed.run([*command, "--cfg", "job"]).stdout)
    assert cfg.task_name == "my_dcgan"
    assert (cfg.model.generator.ngf, cfg.model.discriminator.ndf, cfg.model.lr) == (32, 32, 1e-4)
    assert cfg.model.generator._target_ == "ganzoo.nets.dcgan.DCGANGenerator"  # ganzoo's group, reused
