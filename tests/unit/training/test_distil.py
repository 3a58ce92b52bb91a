"""Distillation of a tiny teacher: a loadable, smaller folder whose trimmed vocabulary lines up with its rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training.distil import build_student, distil, distilled_from, kd_loss, pick_layers
from training.folders import folder_bytes, prefixed, sha256_file, split_examples
from training.loop import LoopConfig, TrainingError
from training.train import train_teacher


@pytest.fixture(scope="module")
def teacher(tiny_teacher: Path) -> Path:
    return tiny_teacher


@pytest.fixture(scope="module")
def student(teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("student")
    config = LoopConfig(batch_size=8, lr=1e-3, max_steps=4, eval_every=2, checkpoint_every=2)
    card = distil(
        teacher,
        out,
        config,
        layers=1,
        limit_per_corpus=24,
        val_limit_per_corpus=8,
        test_limit_per_corpus=8,
        vocab_limit_per_corpus=60,
    )
    return out, card


def test_pick_layers_keeps_every_third_and_the_last() -> None:
    assert pick_layers(12, 4) == [2, 5, 8, 11]
    assert pick_layers(12, 3) == [3, 7, 11]
    assert pick_layers(2, 1) == [1]


def test_student_copies_the_chosen_teacher_layers(teacher: Path) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    small = build_student(model, [1])
    assert small.config.num_hidden_layers == 1
    ours = small.bert.encoder.layer[0].state_dict()
    theirs = model.bert.encoder.layer[1].state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert torch.equal(small.classifier.weight, model.classifier.weight)


def test_kd_loss_is_zero_only_for_matching_soft_targets() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    soft_only = kd_loss(logits, logits.clone(), torch.tensor([0]), temperature=2.0, alpha=1.0)
    assert float(soft_only) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(logits, -logits, torch.tensor([0]), 2.0, 1.0)) > 0.1


def test_student_folder_loads_is_smaller_and_ids_line_up(teacher: Path, student: Any) -> None:
    out, card = student
    assert card["kind"] == "transformer" and card["version"] == sha256_file(out / "model.safetensors")[:12]
    assert folder_bytes(out) < folder_bytes(teacher) / 5
    assert not (out / "teacher_logits.safetensors").exists()
    small = AutoModelForSequenceClassification.from_pretrained(out)
    big = AutoModelForSequenceClassification.from_pretrained(teacher)
    new_tok, old_tok = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(teacher)
    assert small.config.num_hidden_layers == 1
    assert len(new_tok) == small.config.vocab_size < 250_000
    assert new_tok.pad_token_id == small.config.pad_token_id == 1
    trim = card["vocab_trim"]
    assert trim["known_texts"]["identical_segmentation"] == trim["known_texts"]["texts"]
    # Frozen embeddings: each kept row is the teacher's row of the same piece.
    text = prefixed([split_examples("train", 60)[0].text])[0]  # one of the texts the vocabulary came from
    new_ids = new_tok(text)["input_ids"]
    assert new_tok.convert_ids_to_tokens(new_ids) == old_tok.convert_ids_to_tokens(old_tok(text)["input_ids"])
    pieces = new_tok.convert_ids_to_tokens(new_ids)
    for new_id, piece in zip(new_ids, pieces, strict=True):
        old_id = old_tok.convert_tokens_to_ids(piece)
        assert torch.equal(small.get_input_embeddings().weight[new_id], big.get_input_embeddings().weight[old_id])
    # Any Chinese text still segments without <unk>: every single CJK character piece is kept.
    assert new_tok.unk_token_id not in new_tok("从未见过的句子：鼹鼠在沙漠里开演唱会")["input_ids"]
    logits = small(**new_tok(["query: 很好", "query: terrible"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 3)


def test_a_second_round_continues_the_student_with_its_vocabulary(
    teacher: Path, student: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    first, first_card = student
    config = LoopConfig(batch_size=8, lr=1e-4, max_steps=2, eval_every=2, checkpoint_every=2)
    card = distil(teacher, tmp_path, config, limit_per_corpus=16, val_limit_per_corpus=8, test_limit_per_corpus=8,
                  continue_from=first)  # fmt: skip
    assert card["continued_from"]["version"] == first_card["version"]
    assert card["hyperparameters"]["layers_kept"] == first_card["hyperparameters"]["layers_kept"]
    assert card["vocab_trim"] == first_card["vocab_trim"] and card["model_id"] == first_card["model_id"]
    assert (tmp_path / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
    AutoModelForSequenceClassification.from_pretrained(tmp_path)  # a complete folder


def test_a_student_with_a_round_on_the_labels_continues_under_a_retrained_teacher_of_the_same_base(
    teacher: Path, student: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    config = LoopConfig(batch_size=8, lr=1e-4, max_steps=1, eval_every=1, checkpoint_every=1)
    labelled = tmp_path / "labelled"  # as the committed student: distilled, then trained on the labels
    labelled_card = train_teacher(student[0], labelled, config, limit_per_corpus=8, val_limit_per_corpus=8,
                                  test_limit_per_corpus=8, resume=False)  # fmt: skip
    retrained = tmp_path / "retrained"
    shutil.copytree(teacher, retrained)
    card = json.loads((retrained / "model.json").read_text())
    (retrained / "model.json").write_text(json.dumps({**card, "version": "0" * 12}))
    out = distil(retrained, tmp_path / "out", config, limit_per_corpus=8, val_limit_per_corpus=8,
                 test_limit_per_corpus=8, continue_from=labelled)  # fmt: skip
    assert out["continued_from"]["version"] == labelled_card["version"]
    assert out["hyperparameters"]["layers_kept"] == student[1]["hyperparameters"]["layers_kept"]
    assert out["base"]["teacher_version"] == "0" * 12


def test_the_distillation_is_found_under_later_rounds_on_the_labels() -> None:
    distilled = {"teacher_version": "t1", "model_sha256": "e5", "base": {"path": "e5"}}
    card = {"version": "s3", "base": {"version": "s2", "base": {"version": "s1", "base": distilled}}}
    assert distilled_from(card) == distilled
    assert distilled_from({"version": "t1", "base": {"path": "e5", "model_sha256": "e5"}}) is None


def test_only_a_student_of_a_teacher_of_this_base_continues(teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="is not a student of a teacher of this base"):
        distil(teacher, tmp_path / "out", LoopConfig(max_steps=1), continue_from=teacher)
