"""Metrics of generated images: feature extractors and the metric plumbing around torchmetrics."""
