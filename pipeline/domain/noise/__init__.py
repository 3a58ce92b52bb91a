"""Noise that inflates counts: near-duplicate copies, copy-paste floods and bot-like authors.

``NoiseFilter`` (in ``pipeline.domain.noise.filter``) is the one object the workers use.
"""

from pipeline.errors import YuqingError


class NoiseError(YuqingError, ValueError):
    """A noise detector was configured with impossible values."""
