"""``python -m bench.overhead``: what ganzoo adds per iteration, on networks too small to hide it.

The ``tiny`` config of :mod:`bench.throughput` (part of ``make bench``): each model's CPU-sized experiment
with channel widths so small that the arithmetic is negligible (DCGAN ngf = ndf = 4 at 32 px, batch 4;
CycleGAN ngf = ndf = 4 on cyclegan_fmnist's 32 px, batch 2; pix2pix ngf = ndf = 4 on pix2pix_fmnist's 32 px
U-Net of 5 levels, batch 2; BigGAN G_ch = D_ch = 4 on biggan_fmnist, loader batch 4), one torch thread, 500 timed
iterations after 50 of warm-up, three repeats. What is left per iteration is host time: Python, Lightning,
callbacks, kernel launches. It compares the full stack of ``python -m ganzoo.train`` (full), the module in a bare
Trainer (bare) and the plain loop (plain) on the same tiny networks and the same synthetic batches, each
measurement in its own process, sides alternating, medians over the repeats, and reports milliseconds per
iteration and the difference full - plain against the goal of at most 0.5 ms.

``--profile MODEL`` also runs MODEL's tiny config on the full stack once more under cProfile, over the timed
iterations only, and groups the time by where it is spent: Lightning's loop, ``self.log`` and the logger
connector, each callback class, the optimizer wrappers (LightningOptimizer, strategy, precision plugin), the
frozen-D context (``GANModule.frozen``), the model's own ``training_step`` work, and the networks and
optimizers (torch). cProfile slows Python calls down, so the groups' shares matter more than their
milliseconds.

Examples::

    python -m bench.overhead                              # = python -m bench.throughput --configs tiny --no-eval
    python -m bench.overhead --models dcgan --profile dcgan
    python -m bench.overhead --quick                      # smoke check: a few iterations

The grouping is :mod:`bench.profiling`'s; the tables are :mod:`bench.report`'s.
"""

from __future__ import annotations

import sys

from bench import throughput


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--configs" or a.startswith("--configs=") for a in argv):
        raise SystemExit("error: python -m bench.overhead runs the tiny config only: drop --configs")
    throughput.main(["--configs", "tiny", "--no-eval", *argv])


if __name__ == "__main__":
    main()
