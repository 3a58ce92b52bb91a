"""Noise that inflates counts: near-duplicate copies, copy-paste floods and bot-like authors.

The rules live here, free of I/O: ``signature`` (what a text contributes), ``dedup`` and
``bursts`` (the state they act on, in memory), ``filter`` (``NoiseFilter``, the verdicts, and the
``ObservesNoise`` protocol the workers use). The workers' shared state in Redis
(``pipeline.stores.redis.noise``) applies the same rules to the same signatures.
"""

from pipeline.errors import YuqingError


class NoiseError(YuqingError, ValueError):
    """A noise detector was configured with impossible values."""
