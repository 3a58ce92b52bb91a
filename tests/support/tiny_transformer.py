"""Builds tiny random Transformer model folders for tests: real folder layout, seconds to load."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from tests.support.paths import MODELS
from workers.scoring.cards import weights_version

E5_BASE = MODELS / "e5-small-base"
LABELS = ("negative", "neutral", "positive")
SAMPLE = "这家店的服务太差了物流很快包装完好今天天气晴新能源汽车补贴政策股市暴跌原因医院夜间门诊点赞"


def _wordpiece(folder: Path) -> int:
    """A character-level WordPiece tokenizer: enough to exercise the whole path without the e5 files."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted(set(SAMPLE + "abcdefghijklmnopqrstuvwxyz0123456789.,!?:;'\"()#@/-"))
    vocab = {piece: i for i, piece in enumerate(specials + chars + [f"##{c}" for c in chars])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    fast.save_pretrained(folder)
    return len(vocab)


def write_tokenizer(folder: Path, kind: str = "auto") -> tuple[int, int]:
    """The e5 tokenizer when the base folder is built (``auto``), else a tiny WordPiece; (vocab, pad id)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "auto" and (E5_BASE / "tokenizer.json").is_file():
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(E5_BASE / name, folder / name)
        return 250_002, 1
    return _wordpiece(folder), 0


def build_tiny(
    folder: Path,
    id2label: Sequence[str] = LABELS,
    card: dict[str, Any] | None = None,
    tokenizer: str = "auto",
    max_positions: int = 128,
    seed: int = 0,
) -> Path:
    """A random BertForSequenceClassification (hidden 32, 2 layers) saved like a trained model folder.

    ``card`` (merged over defaults) writes model.json with the weights' real version; None writes none.
    """
    vocab, pad = write_tokenizer(folder, tokenizer)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        pad_token_id=pad,
        num_labels=len(id2label),
        id2label=dict(enumerate(id2label)),
        label2id={name: i for i, name in enumerate(id2label)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(folder, safe_serialization=True)
    if card is not None:
        full = {
            "kind": "transformer",
            "model_id": "tiny-test",
            "version": weights_version(folder / "model.safetensors"),
            "labels": list(id2label),
            "max_length": 64,
            "text_prefix": "query: ",
            **card,
        }
        (folder / "model.json").write_text(json.dumps(full), encoding="utf-8")
    return folder
