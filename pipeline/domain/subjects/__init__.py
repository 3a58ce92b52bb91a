"""Monitored subjects (a brand, product, person, event): their definitions and matching posts to them."""

from pipeline.errors import YuqingError


class SubjectError(YuqingError, ValueError):
    """An invalid subject definition, an unreadable subjects file, or mismatched embeddings."""
