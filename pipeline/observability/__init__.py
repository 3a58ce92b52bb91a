"""Metrics every yuqing process exports (prometheus-client), declared once in ``metrics``."""
