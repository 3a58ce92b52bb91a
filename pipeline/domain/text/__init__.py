"""Text preprocessing: cleaning that keeps meaning, language by script, segmentation for hot words."""

from pipeline.errors import YuqingError


class TextError(YuqingError, ValueError):
    """A text-processing component was configured with impossible values."""
