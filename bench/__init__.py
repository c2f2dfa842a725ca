"""Benchmarks of ganzoo (``make bench``); not part of the installed package or the test suite.

:mod:`bench.plain_loops` holds plain-PyTorch training iterations of every model (no Lightning), which the
tests prove weight-for-weight equal to ganzoo's LightningModules; :mod:`bench.throughput` times both.
"""
