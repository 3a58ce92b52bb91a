"""`yuqing model stack` on a tiny teacher and a small baseline: the folder then serves the stack on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.baseline import train_baseline
from training.stacking import WEIGHTS, fit_stack
from workers.scoring.loading import load_scorer
from workers.scoring.stacking import STACK_FOLDER


@pytest.fixture(scope="module")
def small_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    train_baseline(out, limit_per_corpus=300)
    return out


def test_the_stack_is_chosen_on_dev_recorded_and_served(
    tiny_teacher: Path, small_baseline: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_teacher, folder)
    plain = load_scorer(folder).model_version
    section = fit_stack(folder, small_baseline, limit_per_corpus=20)
    assert section["weight"] in WEIGHTS and 0.05 <= section["temperature"] <= 20
    assert section["dev_stacked"]["all"]["n"] == 80  # 20 dev texts of each corpus
    scorer = load_scorer(folder)
    assert scorer.model_version.startswith(f"{plain}+")
    predictions = scorer.predict(["服务太差了", "😀", ""])
    assert predictions[2].label == "unknown"
    assert all(abs(sum(p.probabilities.model_dump().values()) - 1) < 1e-6 for p in predictions)

    first = sorted(p.read_bytes() for p in (folder / STACK_FOLDER).iterdir())
    fit_stack(folder, small_baseline, limit_per_corpus=20)  # again: the same bytes, so the same version
    assert sorted(p.read_bytes() for p in (folder / STACK_FOLDER).iterdir()) == first
    assert load_scorer(folder).model_version == scorer.model_version
