"""Lightning's DDP inside Hydra jobs: single runs, ``-m`` multiruns and Optuna sweeps alike.

With ``strategy=ddp`` (``trainer=ddp_cpu``, ``trainer=gpu trainer.devices=4``, ...) Lightning starts ranks
1..N-1 by running the script again. Lightning 2.x builds that command from ``sys.argv`` and ``hydra.run.dir``,
which breaks multiruns:

- under ``-m`` each child runs the whole sweep again (its own sweep directory; with Optuna a study of its own,
  so ranks train with different hyperparameters);
- the children write to ``hydra.run.dir`` instead of the job's directory;
- after the first job the parent keeps ``LOCAL_RANK``, ``MASTER_PORT``, ... and its process group, so the next
  job starts no children and waits on a group whose peers have exited.

:class:`DDPRelaunch` is a Hydra callback (``ganzoo/conf/hydra/default.yaml``). For every job it makes Lightning start
the children as a plain run of that job alone (``hydra.mode=RUN``, the job's own overrides, its output
directory), and when the job ends it restores the environment and closes the process group, so the next job
of the sweep starts fresh. Jobs that a scheduler starts once per rank (SLURM with one task per device, as
``hydra/launcher=slurm`` does, or torchrun) are not relaunched by Lightning and are left as they are.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# What Lightning's launcher sets in the parent's environment for the children.
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Overrides that describe the sweep rather than the job: the children run the job alone, in its directory.
_SWEEP_KEYS = (
    "hydra.mode",
    "hydra.run",
    "hydra.sweep",
    "hydra.sweeper",
    "hydra/sweeper",
    "hydra.launcher",
    "hydra/launcher",
    "hydra.output_subdir",
    "hydra.job.name",
)


def _is_sweep_key(key: str) -> bool:
    return any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in _SWEEP_KEYS)


def _quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value (paths may hold ``=``, ``,``, spaces, ...)."""
    # Backslashes are literal except before a quote (or the closing quote), where they are doubled.
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


def child_command(local_rank: int, module: str | None = None) -> tuple[list[str], str]:
    """The command and working directory that start DDP rank ``local_rank`` of the current Hydra job.

    The same entry point and config (``--config-path``, ``--config-dir``, ``--config-name``), the job's own
    overrides (a multirun job's values, an Optuna trial's parameters) and the job's ``hydra.*`` overrides,
    run once (``hydra.mode=RUN``) in the job's output directory without rewriting its ``.hydra`` files.
    """
    hydra = HydraConfig.get()
    if module:
        command = [sys.executable, "-m", module]
    else:  # how Lightning finds the script
        import __main__

        spec = getattr(__main__, "__spec__", None)
        command = [sys.executable, "-m", spec.name] if spec else [sys.executable, os.path.abspath(sys.argv[0])]
    for source in hydra.runtime.config_sources:
        location = source.path if source.schema == "file" else f"{source.schema}://{source.path}"
        if source.provider == "main":
            command += ["--config-path", location]
        elif source.provider == "command-line":
            command += ["--config-dir", location]
    command += ["--config-name", hydra.job.config_name]
    command += list(hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(list(hydra.overrides.hydra))
    command += [o.input_line for o in parsed if o.input_line and not _is_sweep_key(o.key_or_group)]
    command += [
        "hydra.mode=RUN",
        f"hydra.run.dir={_quoted(hydra.runtime.output_dir)}",
        f"hydra.job.name={hydra.job.name}_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, hydra.runtime.cwd


class DDPRelaunch(Callback):
    """Hydra callback: Lightning's DDP children run the current job only; each job leaves no DDP state behind.

    ``module`` is the entry point the children run (``python -m <module>``); null: the one this process runs.
    """

    def __init__(self, module: str | None = None) -> None:
        self.module = module
        self._saved_env: dict[str, str | None] = {}
        self._saved_command: Any = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Lightning and torch are imported by the job itself; loading this callback (every ganzoo CLI) needs neither.
        from ganzoo.compat import replace_hydra_child_command

        self._saved_env = {name: os.environ.get(name) for name in _DDP_ENV}
        local_rank = os.environ.get("LOCAL_RANK")
        if local_rank not in (None, "0"):  # a DDP child: say which job it runs (in <job dir>/<job>_ddp_process_N.log)
            hydra = HydraConfig.get()
            log.info("DDP local rank %s: %s", local_rank, " ".join(hydra.overrides.task) or "(no overrides)")
        module = self.module

        def command(local_rank: int) -> tuple[list[str], str]:
            return child_command(local_rank, module=module)

        self._saved_command = replace_hydra_child_command(command)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from ganzoo.compat import replace_hydra_child_command
        from ganzoo.distributed import close_process_group

        if self._saved_command is not None:
            replace_hydra_child_command(self._saved_command)
            self._saved_command = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        close_process_group()
