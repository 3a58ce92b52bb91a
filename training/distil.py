"""Distil the teacher into a compact student for CPUs (``yuqing model distil``).

The student is the teacher with fewer layers (evenly spaced, always ending with the last, whose output the
pooler and classifier were trained on) and, by default, a vocabulary trimmed to the pieces the corpora use
(see ``vocab_trim``). It learns from the teacher's soft labels (KL divergence at temperature T, scaled by T²)
mixed with the hard labels (cross-entropy), over the training texts, with the same resumable loop, the same
validation-based selection and the same single final look at the test splits as the teacher.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerFast

from pipeline.model_paths import TEACHER_MODEL
from training import vocab_trim
from training.corpora import LABELS, Split
from training.folders import (
    CARD_FILE,
    LABEL2ID,
    SPLIT_METHOD,
    TEXT_PREFIX,
    CorpusLimit,
    folder_bytes,
    oversampled,
    predict_logits,
    prefixed,
    read_json,
    save_model_folder,
    split_examples,
    token_ids,
    training_packages,
    write_card,
)
from training.loop import Batch, LoopConfig, TrainingError, best_weights, load_trainable, run_loop
from training.train import _selection, data_card, test_metrics, validation_fn

DEFAULT_TEACHER = TEACHER_MODEL
DEFAULT_OUT = Path(".yuqing/models/student")
LOGITS_FILE = "teacher_logits.safetensors"
_LAYER = re.compile(r"\.layer\.(\d+)\.")


def pick_layers(total: int, keep: int) -> list[int]:
    """Evenly spaced layer indices ending with the last: 12 → 4 keeps 2, 5, 8, 11 (every third)."""
    if not 1 <= keep <= total:
        raise TrainingError(f"--layers must be between 1 and {total}, not {keep}")
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def build_student(teacher: Any, layers: list[int]) -> Any:
    """A copy of ``teacher`` with only ``layers`` of its encoder, renumbered 0..n-1."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = AutoModelForSequenceClassification.from_config(config)  # type: ignore[no-untyped-call]
    new_index = {old: new for new, old in enumerate(layers)}
    state = {}
    for name, tensor in teacher.state_dict().items():
        match = _LAYER.search(name)
        if match is None:
            state[name] = tensor
        elif int(match.group(1)) in new_index:
            state[name[: match.start()] + f".layer.{new_index[int(match.group(1))]}." + name[match.end() :]] = tensor
    student.load_state_dict(state, strict=True)
    return student


def teacher_logits(
    teacher: Any, tokenizer: Any, texts: list[str], max_length: int, cache: Path, precision: str = "fp32"
) -> torch.Tensor:
    """The teacher's logits on the training texts, cached so a resumed distillation skips this pass."""
    key = _texts_key(texts, max_length)
    if cache.is_file():
        stored = load_file(str(cache))
        if "logits" in stored and "key" in stored and _decode(stored["key"]) == key:
            return stored["logits"]
    logits = torch.from_numpy(predict_logits(teacher, tokenizer, texts, max_length, precision=precision))
    save_file({"logits": logits, "key": _encode(key)}, str(cache))
    return logits


def _texts_key(texts: list[str], max_length: int) -> str:
    import hashlib

    digest = hashlib.sha256(str(max_length).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def _encode(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


def _decode(tensor: torch.Tensor) -> str:
    return bytes(tensor.tolist()).decode()


def kd_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    """alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(student, labels); T² keeps gradient scales."""
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1), reduction="batchmean"
    )
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def throughput(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> float:
    started = time.perf_counter()
    predict_logits(model, tokenizer, texts, max_length)
    return round(len(texts) / (time.perf_counter() - started), 2)


def _trim(
    student: Any, tokenizer: Any, teacher_dir: Path, out: Path, max_pieces: int | None, limit: int | None
) -> tuple[Any, Any]:
    """Trim vocabulary and embedding rows; returns the new tokenizer and the trim report."""
    splits: tuple[Split, ...] = ("train", "validation")
    known = prefixed(e.text for split in splits for e in split_examples(split, limit))
    trimmed = vocab_trim.trim(tokenizer, teacher_dir / "tokenizer.json", known, max_pieces)
    vocab_trim.trim_embeddings(student, trimmed.keep)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(trimmed.spec, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_bytes((teacher_dir / "tokenizer_config.json").read_bytes())
    new_tokenizer = AutoTokenizer.from_pretrained(out)
    if not isinstance(new_tokenizer, PreTrainedTokenizerFast):
        raise TrainingError("the trimmed tokenizer did not load as a fast tokenizer")
    rng = np.random.default_rng(0)
    sample = [known[i] for i in rng.choice(len(known), size=min(2_000, len(known)), replace=False)]
    tests = prefixed(e.text for e in split_examples("test", 700))
    report = {
        **trimmed.report,
        "known_texts": vocab_trim.check_alignment(tokenizer, new_tokenizer, trimmed.keep, sample),
        # Informative only: test texts may need pieces that were dropped, and then segment differently.
        "test_texts": vocab_trim.check_alignment(tokenizer, new_tokenizer, trimmed.keep, tests),
    }
    if not report["known_texts"]["pieces_match_rows"]:
        raise TrainingError("trimmed tokenizer pieces do not line up with the kept embedding rows")
    return new_tokenizer, report


def _lineage(card: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The card, then each card it names as its base, down to the e5 build."""
    entry: Any = card
    while isinstance(entry, dict):
        yield entry
        entry = entry.get("base")


def distilled_from(card: dict[str, Any]) -> dict[str, Any] | None:
    """The lineage entry a distillation wrote (its teacher and that teacher's base), however many further
    rounds on the labels came after it; None for a folder no distillation made."""
    return next((entry for entry in _lineage(card) if "teacher_version" in entry), None)


def _continued(folder: Path, teacher_card: dict[str, Any], out: Path) -> tuple[Any, Any, dict[str, Any]]:
    """A student distilled from this teacher or from another teacher of the same base (a retrained one,
    say), loaded to train on, and what its card says it was. The student's layers are its own; what the
    new teacher gives is its soft labels, so only the base has to match."""
    card = read_json(folder / CARD_FILE) or {}
    origin = distilled_from(card)
    if origin is None or origin.get("model_sha256") != teacher_card["base"]["model_sha256"]:
        raise TrainingError(f"{folder} is not a student of a teacher of this base ({teacher_card['base']['path']})")
    out.mkdir(parents=True, exist_ok=True)
    if folder.resolve() != out.resolve():
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (out / name).write_bytes((folder / name).read_bytes())
    student = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    keys = ("model_id", "version", "hyperparameters", "metrics", "validation", "vocab_trim", "continued_from")
    return (
        student,
        AutoTokenizer.from_pretrained(folder),
        {
            "path": str(folder),
            "layers_kept": next(
                entry["hyperparameters"]["layers_kept"]
                for entry in _lineage(card)
                if "layers_kept" in entry.get("hyperparameters", {})
            ),
            **{key: card.get(key) for key in keys},
        },
    )


def distil(
    teacher_dir: Path = DEFAULT_TEACHER,
    out: Path = DEFAULT_OUT,
    config: LoopConfig | None = None,
    layers: int = 4,
    trim_vocab: bool = True,
    max_pieces: int | None = None,
    vocab_limit_per_corpus: int | None = None,
    temperature: float = 2.0,
    alpha: float = 0.7,
    limit_per_corpus: CorpusLimit = None,
    oversample: dict[str, int] | None = None,
    val_limit_per_corpus: CorpusLimit = 400,
    test_limit_per_corpus: int | None = None,
    resume: bool = True,
    train_embeddings: bool = False,
    dtype: str = "float32",
    device: str = "cpu",
    time_budget_s: float | None = None,
    continue_from: Path | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Distil the teacher folder into a student folder at ``out``; returns the student's card.

    ``continue_from`` starts from a student this teacher already distilled (its layers and vocabulary)
    instead of a fresh copy of the teacher's layers: a second round, say on another data mix.
    ``max_length`` defaults to the teacher's.
    """
    config = config or LoopConfig(lr=1e-4)
    teacher_dir, out = Path(teacher_dir), Path(out)
    teacher_card = read_json(teacher_dir / CARD_FILE)
    if teacher_card is None:
        raise TrainingError(f"no teacher model at {teacher_dir}; run `yuqing model train` first")
    started = time.perf_counter()
    max_length = max_length or int(teacher_card["max_length"])
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, dtype=torch.float32).to(device)
    teacher.eval()
    train = oversampled(split_examples("train", limit_per_corpus, config.seed), oversample)
    validation = split_examples("validation", val_limit_per_corpus, config.seed)
    texts = prefixed(e.text for e in train)
    out.mkdir(parents=True, exist_ok=True)
    soft = teacher_logits(teacher, tokenizer, texts, max_length, out / LOGITS_FILE, config.precision).to(device)
    torch.manual_seed(config.seed)
    teacher_tokenizer = tokenizer
    trim_report: dict[str, Any] | None = None
    continued: dict[str, Any] | None = None
    if continue_from is not None:
        student, tokenizer, continued = _continued(Path(continue_from), teacher_card, out)
        student, chosen, trim_report = student.to(device), continued["layers_kept"], continued["vocab_trim"]
    else:
        chosen = pick_layers(teacher.config.num_hidden_layers, layers)
        student = build_student(teacher, chosen).to(device)
        if trim_vocab:
            tokenizer, trim_report = _trim(student, tokenizer, teacher_dir, out, max_pieces, vocab_limit_per_corpus)
    if not train_embeddings:
        student.get_input_embeddings().weight.requires_grad_(False)
    rows = token_ids(tokenizer, texts, max_length)

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(**batch.inputs).logits
        return kd_loss(logits, soft[batch.indices.to(device)], batch.labels, temperature, alpha)

    fingerprint = {
        "teacher_version": teacher_card["version"],
        "continue_from": continued and continued["version"],
        "layers": chosen,
        "trim": trim_report and trim_report["pieces_after"],
        "temperature": temperature,
        "alpha": alpha,
        "limit_per_corpus": limit_per_corpus,
        "oversample": oversample,
        "max_length": max_length,
        "train_embeddings": train_embeddings,
    }
    validate = validation_fn(tokenizer, validation, max_length, 64, config.precision)
    labels = [LABEL2ID[e.label] for e in train]
    result = run_loop(
        student,
        rows,
        labels,
        tokenizer.pad_token_id,
        loss_fn,
        config,
        out,
        fingerprint,
        validate,
        resume,
        time_budget_s=time_budget_s,
    )
    best = best_weights(out, result)
    if best is not None:
        load_trainable(student, best)
    # Back to back and twice each, best of two, so other load on the machine skews both alike.
    speed_texts = prefixed(e.text for e in validation[:512])
    contenders = ((teacher, teacher_tokenizer), (student, tokenizer))
    rates = [throughput(m, t, speed_texts, max_length) for _ in range(2) for m, t in contenders]
    teacher_speed, student_speed = max(rates[0::2]), max(rates[1::2])
    del teacher
    metrics, test_rate = test_metrics(student, tokenizer, max_length, 64, test_limit_per_corpus, config.seed)
    parameters = sum(p.numel() for p in student.parameters())
    if dtype == "float16":
        student.half()
    save_model_folder(student, out, tokenizer_source=None if trim_vocab or continued else teacher_dir)
    (out / LOGITS_FILE).unlink(missing_ok=True)
    card = {
        "model_id": f"yuqing-e5-small-student-l{len(chosen)}",
        "labels": list(LABELS),
        "max_length": max_length,
        "text_prefix": TEXT_PREFIX,
        "base": {"teacher": str(teacher_dir), "teacher_version": teacher_card["version"], **teacher_card["base"]},
        "data": data_card(train, validation, limit_per_corpus, val_limit_per_corpus),
        "splits": {"seed": config.seed, "method": SPLIT_METHOD},
        "hyperparameters": {
            **asdict(config),
            "max_length": max_length,
            "layers_kept": chosen,
            "temperature": temperature,
            "alpha_soft": alpha,
            "train_embeddings": train_embeddings,
            "parameters": parameters,
            "dtype": dtype,
            "loss": "alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE(labels)",
        },
        "vocab_trim": trim_report,
        "continued_from": continued,
        "metrics": metrics,
        "validation": _selection(result),
        "throughput": {
            "texts_per_second": student_speed,
            "teacher_texts_per_second": teacher_speed,
            "speedup_vs_teacher": round(student_speed / teacher_speed, 2),
            "measured_on": f"{len(speed_texts)} validation texts, threads={torch.get_num_threads()}, {device}",
            "test_texts_per_second": test_rate,
            "train_examples_per_second": result.examples_per_second,
        },
        "size": {
            "parameters_bytes_float32": parameters * 4,
            "parameters_bytes_float16": parameters * 2,
            "weights_file_bytes": (out / "model.safetensors").stat().st_size,
            "folder_bytes_without_card": folder_bytes(out),
        },
        "packages": training_packages(),
        "trained_seconds": round(result.train_seconds, 1),
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
    }
    return write_card(out, card)


def extend_vocabulary(
    folder: Path, out: Path, corpora: tuple[str, ...] = ("social",), base: Path = Path(".yuqing/models/e5-small-base")
) -> dict[str, Any]:
    """A copy of a trimmed model folder whose vocabulary also holds every piece the train and validation
    texts of ``corpora`` use (``vocab_trim.extend``); the new rows come from the e5 base. The card is kept
    as lineage, so the next round (``yuqing model train --base OUT``) records where it came from."""
    card = read_json(folder / CARD_FILE)
    if card is None:
        raise TrainingError(f"no model card at {folder / CARD_FILE}")
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    full_spec = json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))
    full_rows = load_file(str(base / "model.safetensors"))["embeddings.word_embeddings.weight"]
    texts = prefixed(e.text for split in ("train", "validation") for e in split_examples(split) if e.corpus in corpora)
    before = len(spec["model"]["vocab"])
    new_spec = vocab_trim.extend(model, spec, full_spec, full_rows, AutoTokenizer.from_pretrained(base), texts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(new_spec, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_bytes((folder / "tokenizer_config.json").read_bytes())
    save_model_folder(model, out, tokenizer_source=None)
    report = {
        "pieces_before": before,
        "pieces_after": len(new_spec["model"]["vocab"]),
        "from_texts_of": list(corpora),
        "texts": len(texts),
    }
    return write_card(
        out, {**{k: v for k, v in card.items() if k not in ("version", "weights_sha256")}, "vocab_extension": report}
    )
