"""The resumable training loop shared by the teacher (``train``) and the student (``distil``): ``transformers.Trainer``.

Trainer runs the steps: AdamW (no weight decay on biases and LayerNorm weights) with a linear warmup/decay
schedule, gradient clipping, bf16 autocast for ``precision="bf16"``, the progress bar and logs, and
checkpoints (``out/checkpoints/checkpoint-N``, the newest ``keep_checkpoints`` kept) with the optimizer, the
scheduler and the RNG state, from which it resumes. What stays ours, and why:

* The batch plan (``epoch_plan``): each epoch shuffles the rows with a generator seeded by (seed, epoch),
  sorts pools of ``bucket`` batches by token length and shuffles the batch order, so a batch holds texts of
  similar length. Trainer's ``group_by_length`` sampler draws from the global torch RNG, so a resumed epoch
  would get other batches than the interrupted one, and it orders each pool longest batch first.
* Validation and selection: ``validate`` scores the model (per-corpus macro-F1) and the best weights are kept
  as a file of trainable tensors, saved when they are scored. ``load_best_model_at_end`` would tie the
  checkpoint interval to the evaluation interval and keep a whole checkpoint for the best step.
* Checkpoint weights hold only the trainable tensors: the caller rebuilds the initial model deterministically
  and frozen tensors never change (the frozen e5 word embeddings are most of the model).
* A fingerprint of data and settings (a resume of another run is refused), the counters of ``LoopResult``
  and the best step, kept in each checkpoint's ``trainer_state.json``; and the wall-time budget.

Runs are seeded by ``seed``, and a resumed run reproduces an uninterrupted one exactly (same threads, same
device): Trainer skips the batches already trained and restores the RNG state, and the plan depends only on
(seed, epoch). Results are not bit-identical to the hand-written loop this replaced (Trainer's fused AdamW,
and its data loader draws from the torch RNG at each epoch); that loop's ``step-N`` checkpoints are not
resumed (the run starts afresh).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from pipeline.errors import YuqingError
from training.folders import pad_batch

CHECKPOINTS = "checkpoints"
WEIGHTS_FILE = "model.safetensors"  # Trainer's name for a checkpoint's weights, which its resume loads
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint


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
    precision: str = "fp32"  # or "bf16": autocast forward passes (CPUs with AMX or AVX-512 BF16, and GPUs)


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


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (one a crash interrupted has no trainer state yet)."""
    found = [p for p in (out / CHECKPOINTS).glob("checkpoint-*") if (p / TRAINER_STATE).is_file()]
    return max(found, key=lambda p: int(p.name.rpartition("-")[2]), default=None)


def _best_name(step: int | None) -> str:
    return f"best-step-{step:06d}.safetensors" if step is not None else ""


def best_weights(out: Path, result: LoopResult) -> Path | None:
    path = out / CHECKPOINTS / _best_name(result.best_step)
    return path if result.best_step is not None and path.is_file() else None


class _Plan(Sampler[list[int]]):
    """``epoch_plan`` as a batch sampler."""

    def __init__(self, lengths: list[int], config: LoopConfig) -> None:
        self.lengths, self.config, self.epoch = lengths, config, 0

    def set_epoch(self, epoch: int) -> None:  # through the loader, or directly under a resume's batch skipper
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.config.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        c = self.config
        return (b.tolist() for b in epoch_plan(self.lengths, c.batch_size, c.seed, self.epoch, c.bucket))


class _PlanLoader(DataLoader[int]):
    def set_epoch(self, epoch: int) -> None:  # Trainer calls it on the loader at each epoch
        cast(_Plan, self.batch_sampler).set_epoch(epoch)


class _Ledger(TrainerCallback, ExportableState):
    """Schedules validation and the time budget; keeps what ``LoopResult`` needs beyond Trainer's state."""

    KEPT = ("fingerprint", "examples", "train_seconds", "history", "best_step", "best_score")

    def __init__(self, folder: Path, fingerprint: dict[str, Any], eval_every: int, deadline: float | None) -> None:
        self.folder, self.fingerprint, self.eval_every, self.deadline = folder, fingerprint, eval_every, deadline
        self.examples, self.train_seconds, self.started = 0, 0.0, 0.0
        self.history: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self.best_score: float | None = None
        self.stopped_early = False

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {key: getattr(self, key) for key in self.KEPT}}

    def restore(self, checkpoint: Path) -> dict[str, Any]:
        """Trainer's state saved in ``checkpoint``, after taking ours from it."""
        saved: dict[str, Any] = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
        attributes = saved["stateful_callbacks"].get(type(self).__name__, {}).get("attributes", {})
        if attributes.get("fingerprint") != self.fingerprint:
            raise TrainingError(f"{checkpoint} was made by a different run (data or settings); use --no-resume")
        for key in self.KEPT:
            setattr(self, key, attributes[key])
        return saved

    def record(self, model: torch.nn.Module, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        if self.best_score is None or entry["score"] > self.best_score:
            self.best_step, self.best_score = entry["step"], entry["score"]
            save_file(trainable_state(model), str(self.folder / _best_name(self.best_step)))

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self.train_seconds += time.perf_counter() - self.started
        done = state.global_step >= state.max_steps
        if self.eval_every and (state.global_step % self.eval_every == 0 or done):
            control.should_evaluate = True
        if self.deadline is not None and time.monotonic() > self.deadline and not done:
            self.stopped_early = control.should_save = control.should_training_stop = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        # Best-weight files other than the one this checkpoint vouches for are now unreachable.
        for path in self.folder.glob("best-step-*.safetensors"):
            if path.name != _best_name(self.best_step):
                path.unlink()


class _LoopTrainer(Trainer):
    """Trainer with our batch plan, loss and validation, and checkpoint weights of trainable tensors only."""

    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments,
        loader: _PlanLoader,
        loss_fn: LossFn,
        validate: ValidateFn | None,
        ledger: _Ledger,
        on_batch: Callable[[np.ndarray], None] | None,
    ) -> None:
        super().__init__(model=model, args=args, callbacks=[ledger])
        self.model_accepts_loss_kwargs = False  # our losses average over their batch themselves
        self.net, self.loader, self.loss_fn, self.validate = model, loader, loss_fn, validate
        self.ledger, self.on_batch = ledger, on_batch
        self.last_loss = torch.zeros(())

    def get_train_dataloader(self) -> DataLoader[int]:
        return self.loader

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        labels, indices = inputs.pop("labels"), inputs.pop("indices")
        if self.on_batch is not None:
            self.on_batch(indices.cpu().numpy())
        loss = self.loss_fn(model, Batch(inputs, labels, indices))
        self.ledger.examples += len(indices)
        self.last_loss = loss.detach()
        return loss

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        assert self.validate is not None  # the ledger schedules no evaluation without it
        score, details = self.validate(self.net)
        entry = {"step": self.state.global_step, "loss": round(float(self.last_loss), 4), "score": score, **details}
        self.ledger.record(self.net, entry)
        metrics = {
            f"{metric_key_prefix}_score": score,
            f"{metric_key_prefix}_best": cast(float, self.ledger.best_score),
        }
        self.log({**metrics, **_numbers(details, metric_key_prefix)})
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        folder = Path(output_dir) if output_dir else self.ledger.folder
        folder.mkdir(parents=True, exist_ok=True)
        save_file(trainable_state(self.net), str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def _numbers(tree: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of nested metrics, flat, for Trainer's log line."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _numbers(value, f"{prefix}_{key}")
        elif isinstance(value, float):
            flat[f"{prefix}_{key}"] = value
    return flat


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
    fingerprint = json.loads(json.dumps({**fingerprint, "loop": asdict(config), "rows": len(rows)}))
    ledger = _Ledger(root, fingerprint, config.eval_every if validate is not None else 0, deadline)
    checkpoint = latest_checkpoint(out) if resume else None
    saved = ledger.restore(checkpoint) if checkpoint is not None else {}
    if checkpoint is None:
        shutil.rmtree(root, ignore_errors=True)
    elif saved["global_step"] >= steps:
        # Finished already: Trainer would take one step past the end of the schedule.
        load_trainable(model, checkpoint / WEIGHTS_FILE)
        return _result(ledger, saved["global_step"], steps, saved["num_input_tokens_seen"])

    def collate(chunk: list[int]) -> dict[str, torch.Tensor]:
        padded = pad_batch([rows[i] for i in chunk], pad_id)
        return {**padded, "labels": torch.tensor([labels[i] for i in chunk]), "indices": torch.tensor(chunk)}

    device = next(model.parameters()).device
    args = TrainingArguments(
        output_dir=str(root),
        seed=config.seed,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        max_grad_norm=config.clip_norm,
        lr_scheduler_type="linear",
        warmup_steps=max(1, round(config.warmup_ratio * steps)),  # an int: steps, not a ratio
        max_steps=steps,
        bf16=config.precision == "bf16",
        use_cpu=device.type == "cpu",
        save_strategy="steps",
        save_steps=config.checkpoint_every,
        save_total_limit=config.keep_checkpoints,
        logging_steps=config.eval_every,
        include_num_input_tokens_seen="non_padding",
        use_cache=getattr(getattr(model, "config", None), "use_cache", False),  # else Trainer changes the config
        report_to="none",
    )
    plan = _Plan([len(r) for r in rows], config)
    loader = _PlanLoader(cast("Dataset[int]", range(len(rows))), batch_sampler=plan, collate_fn=collate)
    trainer = _LoopTrainer(model, args, loader, loss_fn, validate, ledger, on_batch)
    try:
        trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    finally:
        _unprepare(model)
    if ledger.stopped_early:
        print(json.dumps({"step": trainer.state.global_step, "stopped_early": "time budget spent; --resume continues"}))
    return _result(ledger, trainer.state.global_step, steps, trainer.state.num_input_tokens_seen)


def _unprepare(model: torch.nn.Module) -> None:
    """Undo what accelerate did to the model: the caller's own passes choose their precision, and a later
    run on the same model gets prepared (and wrapped in bf16 autocast) again."""
    attributes = vars(model)
    attributes.pop("_is_accelerate_prepared", None)
    if (forward := attributes.pop("_original_forward", None)) is not None:
        attributes["forward"] = forward


def _result(ledger: _Ledger, steps: int, total: int, tokens: int) -> LoopResult:
    return LoopResult(
        steps,
        total,
        ledger.best_step,
        ledger.best_score,
        ledger.history,
        ledger.train_seconds,
        ledger.examples,
        tokens,
        ledger.stopped_early,
    )
