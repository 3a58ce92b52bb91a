"""Signatures shared by the in-memory and the Redis noise filters, and the batch interface."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from pipeline.domain.noise import NoiseError
from pipeline.domain.noise.dedup import NearDuplicateIndex
from pipeline.domain.noise.filter import NoiseFilter, NoiseInput, NoiseLimits, noise_reasons
from pipeline.domain.noise.shingles import shingle_hashes, shingles
from pipeline.domain.noise.signature import NUM_PERM, Signature, Signer, dedup_key, lsh_bands, similarity

SLOGAN = "云帆手机这次真的让人失望透了，大家千万别买！"
TEXTS = [
    SLOGAN,
    "🔥🔥" + SLOGAN + "👍",
    SLOGAN.replace("透", ""),
    SLOGAN.replace("失望", "失失望"),
    "#云帆手机# " + SLOGAN,
    "云帆手机这次真的让人很满意，大家可以放心买！",
    "今天天气很好，我们去公园散步了，心情不错",
    "星河乳业的新品酸奶口感一般，价格偏贵",
    "The battery life of this phone is amazing, really happy with it",
    "The battery life of this phone is terrible, really unhappy with it",
]


def _sign(text: str) -> Signature:
    signature = Signer().sign(text)
    assert signature is not None, text
    return signature


def test_bands_and_rows_are_datasketchs_choice() -> None:
    lsh = MinHashLSH(threshold=0.6, num_perm=64)
    assert lsh_bands(0.6, 64) == (lsh.b, lsh.r) == (10, 6)
    signer = Signer(0.6, 64)
    assert (signer.bands, signer.rows) == (lsh.b, lsh.r)
    assert len(_sign(SLOGAN).bands) == lsh.b


def test_lsh_candidates_are_datasketchs() -> None:
    """Two texts share a band key exactly when datasketch's MinHashLSH calls them candidates."""
    lsh = MinHashLSH(threshold=0.6, num_perm=NUM_PERM)
    signatures = [_sign(text) for text in TEXTS]
    for n, signature in enumerate(signatures):
        sketch = MinHash(num_perm=NUM_PERM, hashvalues=signature.hashvalues, scheme="affine32")
        lsh.insert(n, sketch)
    for n, signature in enumerate(signatures):
        sketch = MinHash(num_perm=NUM_PERM, hashvalues=signature.hashvalues, scheme="affine32")
        ours = {m for m, other in enumerate(signatures) if set(other.bands) & set(signature.bands)}
        assert ours == set(lsh.query(sketch)), TEXTS[n]
    assert set(signatures[0].bands) & set(signatures[1].bands)  # the test compares real candidates


def test_minhash_values_and_similarity_are_datasketchs() -> None:
    for text in TEXTS[:3]:
        signature = _sign(text)
        sketch = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=zlib.crc32)
        sketch.update_batch(list(shingles(dedup_key(text))))
        assert np.array_equal(sketch.hashvalues, signature.hashvalues)
        other = MinHash(num_perm=NUM_PERM, hashvalues=_sign(TEXTS[1]).hashvalues, scheme="affine32")
        assert similarity(signature.hashvalues, other.hashvalues) == pytest.approx(sketch.jaccard(other))
    assert np.array_equal(np.frombuffer(_sign(SLOGAN).packed(), dtype=">u4"), _sign(SLOGAN).hashvalues)
    assert len(_sign(SLOGAN).packed()) == 4 * NUM_PERM


def test_a_batch_signs_each_text_as_datasketch_does() -> None:
    """``sign_many`` does the MinHash arithmetic of a whole batch at once: per text, it must still give
    datasketch's values, with None for the texts too short to take part, wherever they fall."""
    batch = ["好评", *TEXTS, "", "+1", *TEXTS[::-1], "哈哈哈哈哈哈哈哈哈哈哈哈"]
    signer = Signer()
    for text, signature in zip(batch, signer.sign_many(batch), strict=True):
        grams = shingles(dedup_key(text))
        if len(dedup_key(text)) < signer.min_chars or len(grams) < signer.min_shingles:
            assert signature is None, text
            continue
        assert signature is not None, text
        sketch = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=zlib.crc32)
        sketch.update_batch(list(grams))
        assert np.array_equal(sketch.hashvalues, signature.hashvalues), text
        assert (signature.digest, signature.bands) == (_sign(text).digest, _sign(text).bands)
    assert signer.sign_many([]) == [] and signer.sign_many(["好评"]) == [None]


@pytest.mark.parametrize("many", [False, True], ids=["a-batch", "too-many-keys-to-pack-with-far-code-points"])
def test_shingle_hashes_are_zlibs_crc32_of_each_shingle(many: bool) -> None:
    """The numpy CRC-32 of every shingle, in order, with repeats, and each key's count of distinct ones;
    over 1-, 2-, 3- and 4-byte UTF-8 characters, keys shorter than a shingle, and (``many``) code points
    and a key count too large to pack into one sort key."""
    far = "\U00030000\U00030001x" * 3  # CJK extension G: 18-bit code points
    keys = ["云帆手机这次真的让人失望", "ab", "x", "哈哈哈哈哈哈", "ßäé€𝔘𠀀abc123", far, "ab" * 20]
    if many:
        keys = [f"{key}{n}" for n in range(600) for key in keys[-2:]]
    for size in (2, 3):
        hashed, counts, distinct = shingle_hashes(keys, size)
        expected = [[key[i : i + size].encode() for i in range(max(1, len(key) - size + 1))] for key in keys]
        assert hashed.tolist() == [zlib.crc32(gram) for grams in expected for gram in grams]
        assert counts.tolist() == [len(grams) for grams in expected]
        assert distinct.tolist() == [len(set(grams)) for grams in expected]


def test_copies_share_the_digest_and_short_texts_get_none() -> None:
    assert _sign(SLOGAN).digest == _sign("🔥🔥" + SLOGAN + "👍 @某人").digest
    assert _sign(SLOGAN).digest != _sign(SLOGAN.replace("透", "")).digest
    assert len(_sign(SLOGAN).digest) == 16
    for short in ("好评", "+1", "哈哈哈哈哈哈哈哈哈哈哈哈", "", "😀😀😀"):
        assert Signer().sign(short) is None


def test_signatures_are_the_same_in_every_process() -> None:
    """Shared state needs stable hashes: another interpreter, with another hash seed, agrees."""
    code = (
        "from pipeline.domain.noise.signature import Signer;"
        f"s = Signer().sign({SLOGAN!r});"
        "print(s.digest, *s.bands, s.packed().hex())"
    )
    here = _sign(SLOGAN)
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.split() == [here.digest, *here.bands, here.packed().hex()]


def test_invalid_signers() -> None:
    with pytest.raises(NoiseError):
        Signer(threshold=0)
    with pytest.raises(NoiseError):
        Signer(num_perm=8)
    with pytest.raises(NoiseError):
        Signer(min_chars=0)


def test_buckets_keep_their_newest_entries_only() -> None:
    capped, uncapped = NearDuplicateIndex(max_bucket=3), NearDuplicateIndex()
    for n in range(10):  # variants of one text: each an entry of its cluster, sharing some bands
        text = SLOGAN[n:] + "一二三四五六七八九十"[n] * 3
        capped.assign(f"p{n}", text, float(n))
        uncapped.assign(f"p{n}", text, float(n))
    assert len(capped) == len(uncapped) == 10
    assert max(len(bucket) for bucket in uncapped._buckets.values()) > 3
    assert max(len(bucket) for bucket in capped._buckets.values()) == 3


def test_observe_batch_is_observe_in_turn() -> None:
    items = [NoiseInput(f"p{n}", f"u{n % 4}", TEXTS[n % len(TEXTS)], float(n), n % 5 == 0) for n in range(60)]
    one_by_one = NoiseFilter(flood_min_authors=3, burst_max_posts=5)
    batched = NoiseFilter(flood_min_authors=3, burst_max_posts=5)
    expected = [one_by_one.observe(i.post_id, i.author_id, i.text, i.t, repost=i.repost) for i in items]
    assert batched.observe_batch(items[:25]) + batched.observe_batch(items[25:]) == expected
    assert batched.observe_batch([]) == []
    assert any(v.suspected_bot for v in expected) and any(v.is_duplicate for v in expected)


def test_reasons() -> None:
    assert noise_reasons(True, True, True, True) == ("flood", "repeat", "burst")
    assert noise_reasons(False, True, False, True) == ()  # a flood or a burst needs a copy
    assert noise_reasons(False, False, True, False) == ("repeat",)


@pytest.mark.parametrize(
    "bad",
    [
        {"window_s": 0},
        {"similarity": 1.5},
        {"max_entries": 0},
        {"flood_min_authors": 1},
        {"repeat_min": 1},
        {"flood_sticky_s": -1},
        {"burst_max_posts": 0},
    ],
)
def test_invalid_limits(bad: dict[str, float]) -> None:
    with pytest.raises(NoiseError):
        NoiseLimits(**bad)  # type: ignore[arg-type]


def test_a_signature_computed_beforehand_gives_the_verdicts_of_signing_in_the_filter() -> None:
    """The worker signs in its text processes and hands the filter signed inputs."""
    texts = [
        "今天的新品发布会真的太精彩了推荐大家去看",
        "今天的新品发布会真的太精彩了推荐大家去看！！",
        "短",
        "另一条完全不同的内容用来对照一下",
    ]
    items = [NoiseInput(f"p{i}", f"a{i}", text, 1_000.0 + i) for i, text in enumerate(texts)]
    signer = NoiseFilter().signer
    signed = [dataclasses.replace(item, signature=signer.sign(item.text), signed=True) for item in items]
    assert NoiseFilter().observe_batch(signed) == NoiseFilter().observe_batch(items)
    assert [item.signature is None for item in signed] == [False, False, True, False]
