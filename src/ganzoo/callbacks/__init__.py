"""Lightning callbacks that depend only on the models' sampling API."""

from ganzoo.callbacks.checkpoint import GANCheckpoint
from ganzoo.callbacks.sample_grid import SampleGrid

__all__ = ["GANCheckpoint", "SampleGrid"]
