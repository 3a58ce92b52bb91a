"""The root of every error yuqing raises on purpose; each subpackage subclasses it."""


class YuqingError(Exception):
    """Base class of yuqing's own errors."""
