"""Keeps a scoring worker's native memory flat over a long run.

Two things grow a worker's resident set while a Transformer scores on the CPU, and neither is a Python
object (`yuqing bench memory`, docs/benchmarks.md):
- oneDNN and ideep (behind torch's bf16 and fp32 matmuls) cache compiled kernels per input shape, up to
  1,024 each by default, and a worker meets a new (posts, tokens) shape in nearly every call;
- glibc's malloc keeps the freed activations of those calls in its arenas instead of handing them back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

KERNEL_CACHE_ENTRIES = 64
# The libraries' own variables: each reads its variable once, when it first compiles a kernel.
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_kernel_caches() -> None:
    """Cap the kernel caches before the model's first call; a value the operator set is kept."""
    for name in KERNEL_CACHE_VARIABLES:
        os.environ.setdefault(name, str(KERNEL_CACHE_ENTRIES))


def heap_trimmer() -> Callable[[], None] | None:
    """A call that hands the memory freed in malloc's arenas back to the system; None without glibc.

    The model thread calls it after each batch on the CPU: a trim costs milliseconds against a batch's
    second, while trimming only every few seconds lets the arenas swell by hundreds of MB between trims.
    """
    path = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(path), "malloc_trim", None) if path else None
    return None if trim is None else lambda: trim(0)
