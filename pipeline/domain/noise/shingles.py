"""Character shingles of a dedup key, and their hashes for a whole batch at once.

Shingles are character bigrams when the key is mostly Han and trigrams otherwise (see ``signature``).
A shingle's hash is ``zlib.crc32`` of its UTF-8 bytes; ``shingle_hashes`` gives the same values for a
batch in numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_NOT_HAN = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff]+")


def shingle_size(key: str) -> int:
    return 2 if 2 * len(_NOT_HAN.sub("", key)) >= len(key) else 3  # Han count: one deletion, no list


def shingles(key: str) -> set[bytes]:
    size = shingle_size(key)
    return {key[i : i + size].encode() for i in range(max(1, len(key) - size + 1))}


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1)
    return table


_CRC_TABLE = _crc_table()  # zlib's CRC-32, a byte at a time


def _crc_step(crc: np.ndarray, byte: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``crc`` after one more byte, where ``where`` holds."""
    if not where.any():
        return crc
    stepped = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return stepped if where.all() else np.where(where, stepped, crc)


def shingle_hashes(keys: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``zlib.crc32`` of the UTF-8 bytes of every ``shingles`` member of each key with this shingle size,
    repeats kept, key after key; with each key's number of shingles and of distinct ones.

    The same values as hashing the members one by one, in numpy over the whole batch: a Python loop
    cost a few hundred ns a shingle in objects alone, and a post has about a hundred."""
    lengths = np.fromiter(map(len, keys), np.int64, len(keys))
    code_points = np.frombuffer("".join(keys).encode("utf-32-le"), np.uint32)
    counts = np.maximum(lengths - size + 1, 1)  # a key shorter than a shingle is one shingle
    key_of = np.repeat(np.arange(len(keys)), counts)
    start = (np.cumsum(lengths) - lengths - np.cumsum(counts) + counts)[key_of] + np.arange(int(counts.sum()))
    width = np.minimum(lengths, size)[key_of]
    crc = np.full(len(start), 0xFFFFFFFF, np.uint32)
    # A shingle's identity packs its code points and its key's index into one integer, so that one sort
    # counts the distinct shingles of every key (a sort on two columns cost 30 times as much).
    char_bits = max(int(code_points.max(initial=0)).bit_length(), 1)
    key_bits = max(len(keys).bit_length(), 1)
    packable = size * char_bits + key_bits <= 64
    identity = key_of.astype(np.uint64) if packable else np.zeros(len(start), np.uint64)
    char_bits = char_bits if packable else 21  # any code point
    for j in range(size):
        has = j < width
        char = code_points[np.minimum(start + j, len(code_points) - 1)] * has
        identity = (identity << np.uint64(char_bits)) | char
        n_bytes = (char >= 0x80).astype(np.uint32) + (char >= 0x800) + (char >= 0x10000) + 1  # in UTF-8
        shift = 6 * (n_bytes - 1)
        lead = np.where(n_bytes == 1, char, ((np.uint32(0xFF00) >> n_bytes) & 0xFF) | (char >> shift))
        crc = _crc_step(crc, lead, has)
        for k in (1, 2, 3):
            shift = np.where(shift >= 6, shift - 6, 0)
            crc = _crc_step(crc, 0x80 | ((char >> shift) & 0x3F), has & (n_bytes > k))
    if packable:
        ordered = np.sort(identity)  # not np.unique: several times slower here
        kinds = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
        distinct = np.bincount((kinds >> np.uint64(size * char_bits)).astype(np.int64), minlength=len(keys))
    else:  # too many bits to pack (far code points in trigrams of a large batch): sort on two columns
        order = np.lexsort((identity, key_of))
        sorted_keys, sorted_ids = key_of[order], identity[order]
        first_of_kind = np.ones(len(order), bool)
        first_of_kind[1:] = (sorted_keys[1:] != sorted_keys[:-1]) | (sorted_ids[1:] != sorted_ids[:-1])
        distinct = np.bincount(sorted_keys[first_of_kind], minlength=len(keys))
    return (crc ^ 0xFFFFFFFF).astype(np.uint32), counts, distinct
