"""A plain, resumable PyTorch training loop shared by the teacher (``train``) and the student (``distil``).

AdamW with a linear warmup/decay schedule and gradient clipping. Batches are length-bucketed: each epoch
shuffles the data with a generator seeded by (seed, epoch), sorts pools of ``bucket`` batches by token length
and shuffles the batch order, so a batch holds texts of similar length and little compute goes to padding.
Because the plan depends only on the seed and the epoch, a checkpoint needs no data-loader state: step ``s``
always gets the same batch.

Checkpoints (``out/checkpoints/step-NNNNNN``) hold the *trainable* tensors, the optimizer, the scheduler, the
torch RNG state (dropout), the step and the selection state. Frozen tensors are not stored: the caller
rebuilds the initial model deterministically, and frozen tensors never change. Resuming therefore reproduces
an uninterrupted run exactly (same threads, same device).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from pipeline.errors import YuqingError
from training.folders import autocast, pad_batch

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
TRAINABLE_FILE = "trainable.safetensors"


class TrainingError(YuqingError):
    """A training run cannot start or resume as asked."""


@dataclass(frozen=True)
class LoopConfig:
    seed: int = 13
    batch_size: int = 32
    lr: float = 6e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    epochs: float = 1.0
    max_steps: int | None = None
    clip_norm: float = 1.0
    checkpoint_every: int = 100
    eval_every: int = 100
    keep_checkpoints: int = 2
    bucket: int = 50  # batches per length-sorted pool
    precision: str = "fp32"  # or "bf16": autocast forward passes (about 1.4x on a 2-core AMX CPU)


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    indices: torch.Tensor  # rows of the training set, so a loss can look up per-example targets


LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]
ValidateFn = Callable[[torch.nn.Module], tuple[float, dict[str, Any]]]


@dataclass
class LoopResult:
    steps: int
    total_steps: int
    best_step: int | None
    best_score: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    examples: int = 0
    tokens: int = 0
    stopped_early: bool = False  # the time budget ran out; a resume continues the same schedule

    @property
    def examples_per_second(self) -> float:
        return round(self.examples / self.train_seconds, 2) if self.train_seconds else 0.0


def epoch_plan(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket: int) -> list[np.ndarray]:
    """The batches of one epoch (arrays of row indices), length-bucketed, fixed by (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lens = np.asarray(lengths)
    batches: list[np.ndarray] = []
    pool = batch_size * bucket
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def total_steps(n_rows: int, config: LoopConfig) -> int:
    per_epoch = math.ceil(n_rows / config.batch_size)
    return config.max_steps if config.max_steps is not None else max(1, math.ceil(config.epochs * per_epoch))


def _optimizer(model: torch.nn.Module, config: LoopConfig) -> torch.optim.AdamW:
    # The usual BERT recipe: no weight decay on biases and LayerNorm weights.
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def _scheduler(optimizer: torch.optim.Optimizer, steps: int, config: LoopConfig) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, round(config.warmup_ratio * steps))

    def factor(step: int) -> float:
        return step / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def _step_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file())


def latest_checkpoint(out: Path) -> Path | None:
    found = _step_dirs(out / CHECKPOINTS)
    return found[-1] if found else None


def _save_checkpoint(
    root: Path, model: torch.nn.Module, opt: Any, sched: Any, state: dict[str, Any], keep: int
) -> None:
    final = root / f"step-{state['step']:06d}"
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / TRAINABLE_FILE))
    rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save({**state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng}, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in _step_dirs(root)[:-keep]:
        shutil.rmtree(old)
    # Best-weight files other than the one this checkpoint vouches for are now unreachable.
    for best in root.glob("best-step-*.safetensors"):
        if best.name != _best_name(state["best_step"]):
            best.unlink()


def _best_name(step: int | None) -> str:
    return f"best-step-{step:06d}.safetensors" if step is not None else ""


def best_weights(out: Path, result: LoopResult) -> Path | None:
    path = out / CHECKPOINTS / _best_name(result.best_step)
    return path if result.best_step is not None and path.is_file() else None


def run_loop(
    model: torch.nn.Module,
    rows: Sequence[Sequence[int]],
    labels: Sequence[int],
    pad_id: int,
    loss_fn: LossFn,
    config: LoopConfig,
    out: Path,
    fingerprint: dict[str, Any],
    validate: ValidateFn | None = None,
    resume: bool = False,
    on_batch: Callable[[np.ndarray], None] | None = None,
    time_budget_s: float | None = None,
) -> LoopResult:
    """Train ``model`` in place; ``fingerprint`` (data, base, settings) must match to resume a checkpoint.

    ``time_budget_s`` stops this invocation after that many seconds of wall time, at a checkpoint: on
    shared CPUs a run's speed is unpredictable, and the selection state makes an early stop usable.
    """
    deadline = time.monotonic() + time_budget_s if time_budget_s is not None else None
    root = out / CHECKPOINTS
    steps = total_steps(len(rows), config)
    per_epoch = math.ceil(len(rows) / config.batch_size)
    fingerprint = json.loads(json.dumps({**fingerprint, "loop": asdict(config), "rows": len(rows)}))
    opt, sched = _optimizer(model, config), None
    sched = _scheduler(opt, steps, config)
    result = LoopResult(0, steps, None, None)
    device = next(model.parameters()).device
    checkpoint = latest_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
        if state["fingerprint"] != fingerprint:
            raise TrainingError(f"{checkpoint} was made by a different run (data or settings); use --no-resume")
        load_trainable(model, checkpoint / TRAINABLE_FILE)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        for key in ("steps", "best_step", "best_score", "history", "train_seconds", "examples", "tokens"):
            setattr(result, key, state["result"][key])
    else:
        shutil.rmtree(root, ignore_errors=True)
        torch.manual_seed(config.seed)
    root.mkdir(parents=True, exist_ok=True)

    def snapshot() -> None:
        state = {"step": result.steps, "best_step": result.best_step, "fingerprint": fingerprint}
        state["result"] = {k: v for k, v in asdict(result).items() if k not in ("total_steps", "stopped_early")}
        _save_checkpoint(root, model, opt, sched, state, config.keep_checkpoints)

    model.train()
    plan: list[np.ndarray] = []
    bar = tqdm(total=steps, initial=result.steps, desc="train", mininterval=1 if sys.stderr.isatty() else 30)
    while result.steps < steps:
        epoch, index = divmod(result.steps, per_epoch)
        if index == 0 or not plan:
            plan = epoch_plan([len(r) for r in rows], config.batch_size, config.seed, epoch, config.bucket)
        chunk = plan[index]
        if on_batch is not None:
            on_batch(chunk)
        started = time.perf_counter()
        inputs = {k: v.to(device) for k, v in pad_batch([rows[i] for i in chunk], pad_id).items()}
        batch = Batch(inputs, torch.tensor([labels[i] for i in chunk], device=device), torch.from_numpy(chunk))
        with autocast(device, config.precision):
            loss = loss_fn(model, batch)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.clip_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        result.train_seconds += time.perf_counter() - started
        result.examples += len(chunk)
        result.tokens += int(inputs["attention_mask"].sum())
        result.steps += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", ex_s=result.examples_per_second, refresh=False)
        done = result.steps == steps
        if validate is not None and (result.steps % config.eval_every == 0 or done):
            score, metrics = validate(model)
            model.train()
            result.history.append({"step": result.steps, "loss": round(loss.item(), 4), "score": score, **metrics})
            if result.best_score is None or score > result.best_score:
                result.best_step, result.best_score = result.steps, score
                save_file(trainable_state(model), str(root / _best_name(result.steps)))
            bar.write(json.dumps({"step": result.steps, "score": score, "best": result.best_score, **metrics}))
        out_of_time = deadline is not None and time.monotonic() > deadline and not done
        if result.steps % config.checkpoint_every == 0 or done or out_of_time:
            snapshot()
        if out_of_time:
            result.stopped_early = True
            bar.write(json.dumps({"step": result.steps, "stopped_early": "time budget spent; --resume continues"}))
            break
    bar.close()
    return result
