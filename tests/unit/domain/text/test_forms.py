"""The folded form (NFKC, casefold) that dedup keys and subject matching compare texts in."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from pipeline.domain.text.forms import folded


@given(st.text())
def test_folded_is_nfkc_casefolded(text: str) -> None:
    assert folded(text) == unicodedata.normalize("NFKC", text).casefold()


def test_a_text_folded_again_is_remembered() -> None:
    text = "云帆手机（ＭＡＴＥ６０）这次真的让人失望！"  # full-width forms: NFKC's dear case
    first = folded(text)
    assert first == "云帆手机(mate60)这次真的让人失望!" and folded(text) is first
