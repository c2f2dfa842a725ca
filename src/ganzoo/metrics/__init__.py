"""Metrics of generated images: feature extractors, torchmetrics FID/KID/IS, precision/recall/density/coverage,
real-statistics cache, evaluation."""

from ganzoo.metrics.class_statistics import ClassStatistics
from ganzoo.metrics.classifier import ClassifierRecipe, SmallClassifier, predict, train_classifier
from ganzoo.metrics.evaluation import Evaluation
from ganzoo.metrics.extractors import ClassifierFeatures, FeatureExtractor, InceptionFeatures
from ganzoo.metrics.feature_metrics import METRICS, FeatureMetrics
from ganzoo.metrics.prdc import RealManifold, precision_recall_density_coverage
from ganzoo.metrics.real_statistics import RealStatisticsCache, statistics_key

__all__ = [
    "METRICS",
    "ClassStatistics",
    "ClassifierFeatures",
    "ClassifierRecipe",
    "Evaluation",
    "FeatureExtractor",
    "FeatureMetrics",
    "InceptionFeatures",
    "RealManifold",
    "RealStatisticsCache",
    "SmallClassifier",
    "precision_recall_density_coverage",
    "predict",
    "statistics_key",
    "train_classifier",
]
