from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.batching import plan_model_calls


def test_short_texts_are_grouped_and_bounded_by_items() -> None:
    calls = plan_model_calls(["a"] * 10, max_items=4, max_tokens=1000, estimate_tokens=len)
    assert [len(c) for c in calls] == [4, 4, 2]


def test_token_budget_counts_padding_to_the_longest() -> None:
    texts = ["x" * 10, "x" * 10, "x" * 100]
    calls = plan_model_calls(texts, max_items=10, max_tokens=150, estimate_tokens=len)
    assert calls == [[0, 1], [2]]


@given(st.lists(st.text(max_size=80), max_size=60), st.integers(1, 16), st.integers(1, 400))
def test_every_text_in_exactly_one_call_within_bounds(texts: list[str], items: int, tokens: int) -> None:
    calls = plan_model_calls(texts, items, tokens, len)
    assert sorted(i for call in calls for i in call) == list(range(len(texts)))
    for call in calls:
        assert len(call) <= items
        if len(call) > 1:
            assert max(len(texts[i]) for i in call) * len(call) <= tokens
