"""Benchmarks of ganzoo (``make bench``, ``make gpu-check``, ``make results``); not part of the installed package
or the test suite.

``python -m bench.throughput`` times ganzoo's training against the plain-PyTorch loops of :mod:`tests.references.loops`,
which the tests prove weight-for-weight equal to ganzoo's LightningModules. Its pieces, lowest first:

* :mod:`bench.plans`: which recipes are timed, at which sizes, in which speed variants;
* :mod:`bench.synthetic`: the in-memory synthetic batches every side trains on;
* :mod:`bench.memory` and :mod:`bench.timing`: the memory meter and the clock of the timed window;
* :mod:`bench.profiling`: cProfile time grouped by where it is spent;
* :mod:`bench.configs`: the composed config each side trains with;
* :mod:`bench.trainer_parts`: what the bench puts into a Lightning run (data module, clock callback);
* :mod:`bench.workers`: each measurement in its own process, the plans' repeats with the sides alternating;
* :mod:`bench.sides`: one measurement of each side (full stack, bare Trainer, plain loop);
* :mod:`bench.evaluation`: the FID feature extractors' throughput;
* :mod:`bench.machine` and :mod:`bench.report`: the machine's description, the results files and their tables.
"""

from pathlib import Path

#: The repository's root: the working directory of every measurement process.
REPO = Path(__file__).resolve().parents[1]
#: Where the benches write their results (``<name>.json`` and ``<name>.md``) by default.
RESULTS_DIR = REPO / "bench" / "results"
