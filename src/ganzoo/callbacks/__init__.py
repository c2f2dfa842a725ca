"""Lightning callbacks that depend only on the models' sampling API."""

from ganzoo.callbacks.checkpoint import BestCheckpoint, GANCheckpoint
from ganzoo.callbacks.class_sheet import ClassSheet
from ganzoo.callbacks.evaluation import EvaluationCallback
from ganzoo.callbacks.failure import FailureCheckpoint
from ganzoo.callbacks.guards import NonFiniteError, NonFiniteGuard
from ganzoo.callbacks.interpolation import InterpolationSheet
from ganzoo.callbacks.metrics_log import MetricsLog
from ganzoo.callbacks.preemption import Preempted, PreemptionCheckpoint
from ganzoo.callbacks.progress import IterationProgressBar
from ganzoo.callbacks.run_summary import RunSummary
from ganzoo.callbacks.sample_grid import SampleGrid
from ganzoo.callbacks.translation_grid import TranslationGrid

__all__ = [
    "BestCheckpoint",
    "ClassSheet",
    "EvaluationCallback",
    "FailureCheckpoint",
    "GANCheckpoint",
    "InterpolationSheet",
    "IterationProgressBar",
    "MetricsLog",
    "NonFiniteError",
    "NonFiniteGuard",
    "Preempted",
    "PreemptionCheckpoint",
    "RunSummary",
    "SampleGrid",
    "TranslationGrid",
]
