"""The form in which matching and dedup keys compare texts: NFKC, casefolded (see ``clean``'s notes).

A post's text is folded twice, for its dedup key and for subject matching, and on Chinese text with
full-width punctuation NFKC is the dearest step of either. ``folded`` is ``fold`` remembering the texts
of the batches in flight, so the second fold is a lookup when both run in one process.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

REMEMBERED_TEXTS = 4_096  # the posts of a few micro-batches in flight: a few MB at most


def fold(text: str) -> str:
    """``text`` in NFKC, casefolded."""
    return unicodedata.normalize("NFKC", text).casefold()


# For posts' texts only: words and terms, folded far more often, would push the texts out.
folded = lru_cache(maxsize=REMEMBERED_TEXTS)(fold)
