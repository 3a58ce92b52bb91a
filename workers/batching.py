"""Split a micro-batch into model calls bounded by items and padded tokens. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def plan_model_calls(
    texts: Sequence[str], max_items: int, max_tokens: int, estimate_tokens: Callable[[str], int]
) -> list[list[int]]:
    """Group text indices into calls, shortest first so each call pads little (length bucketing).

    A call's cost is its longest text times its size, as padding makes it; no call exceeds
    ``max_items`` or ``max_tokens``, except that a single text always forms a call on its own.
    """
    order = sorted(range(len(texts)), key=lambda i: estimate_tokens(texts[i]))
    calls: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = estimate_tokens(texts[index])  # ascending order: the newest text is the longest
        if current and (len(current) >= max_items or longest * (len(current) + 1) > max_tokens):
            calls.append(current)
            current = []
        current.append(index)
    if current:
        calls.append(current)
    return calls
