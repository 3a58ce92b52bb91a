"""The probe list (training/data/social/probes.jsonl): short phrases and minimal pairs whose label any native
reader agrees on, scored by the default model. A model that reads surface cues ("太…了" as a complaint) fails here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline.settings import STUDENT_MODEL
from training.corpora import LABELS, SOCIAL_DIR
from workers.scoring.loading import load_scorer

PROBES: Path = SOCIAL_DIR / "probes.jsonl"
REQUIRED_ACCURACY = 0.95  # the target of issue #13
REGRESSION_FLOOR = 0.88  # the default model reached 0.90 when the list was written: it must not slip


def _probes() -> list[dict[str, str]]:
    return [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines() if line.strip()]


def _accuracy() -> tuple[float, list[tuple[str, str, str]]]:
    probes = _probes()
    predictions = load_scorer(STUDENT_MODEL).predict([p["text"] for p in probes])
    wrong = [
        (p["text"], p["label"], r.label) for p, r in zip(probes, predictions, strict=True) if r.label != p["label"]
    ]
    return 1 - len(wrong) / len(probes), wrong


def test_the_probe_list_is_large_balanced_and_well_formed() -> None:
    probes = _probes()
    assert len(probes) >= 150
    assert len({p["text"] for p in probes}) == len(probes)
    counts = Counter(p["label"] for p in probes)
    assert set(counts) == set(LABELS) and min(counts.values()) >= 40


def test_the_default_model_keeps_its_probe_accuracy() -> None:
    accuracy, wrong = _accuracy()
    assert accuracy >= REGRESSION_FLOOR, f"{accuracy:.3f}; wrong (text, expected, got): {wrong}"


@pytest.mark.xfail(
    reason="issue #13: the default (student stacked with TF-IDF) reaches 0.900; negation and sarcasm pairs remain",
    strict=False,
)
def test_the_default_model_gets_the_probes_right() -> None:
    accuracy, wrong = _accuracy()
    assert accuracy >= REQUIRED_ACCURACY, f"{accuracy:.3f}; wrong (text, expected, got): {wrong}"
