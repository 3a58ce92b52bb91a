"""Alerting around the pure detectors: the service that runs them on live counts, and webhook delivery."""
