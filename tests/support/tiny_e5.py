"""A tiny random BERT (hidden 32, 2 layers) with the real e5 tokenizer, for the training tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertModel

from tests.support.paths import MODELS
from tests.support.require import require_service
from training.loop import LoopConfig
from training.train import train_teacher

E5_BASE = MODELS / "e5-small-base"


def build_tiny_base(folder: Path) -> Path:
    """Needs the e5 base folder's tokenizer: skips locally without it; in CI (make test builds it) fails."""
    require_service((E5_BASE / "tokenizer.json").is_file(), f"{E5_BASE} not built (run `yuqing model build-base`)")
    folder.mkdir(parents=True, exist_ok=True)
    config = BertConfig(
        vocab_size=250_037,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)  # type: ignore[no-untyped-call]
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(E5_BASE / name, folder / name)
    return folder


def train_tiny(
    base: Path, out: Path, steps: int = 6, config: LoopConfig | None = None, **kwargs: Any
) -> dict[str, Any]:
    config = config or LoopConfig(batch_size=8, lr=1e-3, max_steps=steps, eval_every=3, checkpoint_every=3)
    options: dict[str, Any] = {"max_length": 32, "limit_per_corpus": 24, "val_limit_per_corpus": 8}
    return train_teacher(base, out, config, test_limit_per_corpus=8, **{**options, **kwargs})
