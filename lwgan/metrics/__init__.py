"""Metrics: pose errors (`lwgan.metrics.pose`)."""
