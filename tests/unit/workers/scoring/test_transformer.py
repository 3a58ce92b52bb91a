"""The Transformer scorer on tiny random models: odd input, label mapping, embeddings, precision, runtime."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.settings import Settings
from schemas.records import SENTIMENTS
from tests.support.tiny_transformer import build_tiny
from workers.runtime import ScoringRuntime
from workers.scoring.cards import weights_version
from workers.scoring.loading import load_scorer
from workers.scoring.options import (
    RuntimeOptions,
    RuntimeOptionsError,
    cpu_has_native_bf16,
    resolve_device,
    resolve_precision,
)
from workers.scoring.protocol import UNKNOWN, ModelNotFoundError, Prediction
from workers.scoring.transformer import TransformerScorer, load_transformer

CPU = RuntimeOptions(device="cpu", precision="fp32", torch_threads=2)
NO_SIGNAL = ["", "   \n\t ", "!!!???。。。", "\x00\x01", "…—·"]  # emoji are signal: see below
ODD_TEXTS = [
    *NO_SIGNAL,
    "\ud800 lone surrogate",
    "ภาษาไทย ไม่เคยเห็น",
    "مرحبا بالعالم",
    "안녕하세요",
    "12345",
    "这家店的服务太差了" * 50_000,
    "I love it " * 10_000,
    "混合 mixed テキスト 😀",
    "https://example.com/a/very/long/path?with=query&and=more#frag",
]


@pytest.fixture(scope="module")
def card_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny") / "tiny-card", card={})


@pytest.fixture(scope="module")
def scorer(card_dir: Path) -> TransformerScorer:
    loaded = load_scorer(card_dir, options=CPU)
    assert isinstance(loaded, TransformerScorer)
    return loaded


def assert_well_formed(prediction: Prediction) -> None:
    assert prediction.label in SENTIMENTS
    probs = prediction.probabilities
    assert math.isclose(probs.negative + probs.neutral + probs.positive, 1.0, abs_tol=1e-5)


def test_card_is_honoured(scorer: TransformerScorer, card_dir: Path) -> None:
    assert scorer.model_id == "tiny-test"
    assert scorer.model_version == weights_version(card_dir / "model.safetensors")
    assert scorer.max_length == 64 and scorer.spec.text_prefix == "query: "


def test_odd_inputs_never_raise(scorer: TransformerScorer) -> None:
    predictions = scorer.predict(ODD_TEXTS)
    assert len(predictions) == len(ODD_TEXTS)
    for text, prediction in zip(ODD_TEXTS, predictions, strict=True):
        assert_well_formed(prediction)
        assert (prediction == UNKNOWN) == (text in NO_SIGNAL)
    assert scorer.predict([]) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=300), min_size=1, max_size=6))
def test_any_text_gets_a_well_formed_prediction(scorer: TransformerScorer, texts: list[str]) -> None:
    for prediction in scorer.predict(texts):
        assert_well_formed(prediction)


def test_embeddings_share_the_forward_pass(scorer: TransformerScorer) -> None:
    texts = ["物流很快，包装完好", "", "Flight delayed again, terrible service", "…", "今日天气晴 sunny", "😀"]
    predictions, vectors = scorer.predict_with_embeddings(texts)
    assert vectors.shape == (len(texts), scorer.hidden_size) and vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(norms[[0, 2, 4, 5]], 1.0, atol=1e-5)
    assert norms[1] == 0 and norms[3] == 0  # nothing to embed: a zero row, never a made-up direction
    np.testing.assert_allclose(scorer.embed(texts), vectors, atol=1e-6)
    assert scorer.predict(texts) == predictions


def test_emoji_alone_are_read_not_dropped(scorer: TransformerScorer) -> None:
    """ "👍" or "😡" as a whole comment carries sentiment; only texts without letters, digits or pictographs
    are unknown."""
    predictions = scorer.predict(["😀🔥👍", "😡😡", "❤️"])
    assert all(p != UNKNOWN for p in predictions)


def test_padding_does_not_change_results(scorer: TransformerScorer) -> None:
    texts = ["差", "这家店的服务太差了，再也不来了，客服也不理人", "ok"]
    together, vectors = scorer.predict_with_embeddings(texts)
    for i, text in enumerate(texts):
        alone, vector = scorer.predict_with_embeddings([text])
        assert alone[0].label == together[i].label
        assert math.isclose(alone[0].probabilities.positive, together[i].probabilities.positive, abs_tol=1e-5)
        np.testing.assert_allclose(vector[0], vectors[i], atol=1e-5)


def test_concurrent_predictions_match_sequential(scorer: TransformerScorer) -> None:
    batches = [[f"第{i}批 服务很好", f"batch {i} awful delay", "😀"] for i in range(16)]
    sequential = [scorer.predict(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(scorer.predict, batches)) == sequential


def test_token_estimate_is_cheap_and_bounded(scorer: TransformerScorer) -> None:
    assert scorer.estimate_tokens("这家店的服务太差了" * 50_000) == scorer.max_length
    assert 1 <= scorer.estimate_tokens("") < scorer.estimate_tokens("服务很好，物流也快") < scorer.max_length
    assert scorer.estimate_tokens(None) >= 1  # type: ignore[arg-type]


def test_folder_without_card_loads_by_config(tmp_path: Path) -> None:
    folder = build_tiny(tmp_path / "brought-model", id2label=("NEGATIVE", "Neutral", "pos"), tokenizer="wordpiece")
    scorer = load_scorer(folder, options=CPU)
    assert isinstance(scorer, TransformerScorer)
    assert scorer.model_id == "brought-model"
    assert scorer.model_version == weights_version(folder / "model.safetensors")
    assert scorer.max_length == 128 and scorer.spec.text_prefix == ""  # the position limit, no prefix
    for prediction in scorer.predict(ODD_TEXTS):
        assert_well_formed(prediction)


def test_class_order_and_binary_heads_are_mapped(tmp_path: Path) -> None:
    folder = build_tiny(tmp_path / "shuffled", id2label=("positive", "negative", "neutral"), tokenizer="wordpiece")
    scorer = load_transformer(folder, None, CPU)
    with torch.inference_mode():
        encoded = scorer.tokenizer(["服务很好"], return_tensors="pt")
        raw = scorer.model(**encoded).logits.softmax(-1)[0].tolist()
    probs = scorer.predict(["服务很好"])[0].probabilities
    assert probs.positive == pytest.approx(raw[0], abs=1e-5) and probs.negative == pytest.approx(raw[1], abs=1e-5)

    binary = load_transformer(build_tiny(tmp_path / "binary", ("neg", "pos"), tokenizer="wordpiece"), None, CPU)
    for prediction in binary.predict(["服务很好", "太差了", "ok"]):
        assert_well_formed(prediction)
        assert prediction.probabilities.neutral == 0 and prediction.label != "neutral"


def test_generic_labels_need_a_mapping(tmp_path: Path) -> None:
    folder = build_tiny(tmp_path / "generic", id2label=("LABEL_0", "LABEL_1", "LABEL_2"), tokenizer="wordpiece")
    with pytest.raises(ModelNotFoundError, match=r"LABEL_0.*YUQING_MODEL_LABELS"):
        load_scorer(folder, options=CPU)
    settings = Settings(model_labels="negative, neutral, positive", device="cpu", precision="fp32")
    mapped = load_scorer(folder, options=RuntimeOptions.from_settings(settings))
    assert_well_formed(mapped.predict(["一般般吧"])[0])


def test_unmappable_labels_are_refused_by_name(tmp_path: Path) -> None:
    folder = build_tiny(tmp_path / "emotions", id2label=("joy", "anger", "sadness"), tokenizer="wordpiece")
    with pytest.raises(ModelNotFoundError, match=r"\['joy', 'anger', 'sadness'\]"):
        load_scorer(folder, options=CPU)


def test_missing_and_corrupt_folders_say_how_to_build(card_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="yuqing model build-base"):
        load_scorer(tmp_path / "nowhere", options=CPU)
    with pytest.raises(ModelNotFoundError, match=r"yuqing model build-base.*yuqing model train"):
        load_transformer(tmp_path / "nowhere", None, CPU)

    def copy(name: str) -> Path:
        return Path(shutil.copytree(card_dir, tmp_path / name))

    no_config = copy("no-config")
    (no_config / "config.json").unlink()
    truncated = copy("truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    garbage = copy("garbage")
    (garbage / "model.safetensors").write_bytes(b"not safetensors at all")
    card = json.loads((garbage / "model.json").read_text(encoding="utf-8"))
    card["version"] = weights_version(garbage / "model.safetensors")  # a card that vouches for garbage
    (garbage / "model.json").write_text(json.dumps(card), encoding="utf-8")
    no_tokenizer = copy("no-tokenizer")
    for name in no_tokenizer.glob("tokenizer*"):
        name.unlink()
    for folder, message in [
        (no_config, "no config.json"),
        (truncated, "do not match"),
        (garbage, "cannot load the model"),
        (no_tokenizer, "tokenizer"),
    ]:
        with pytest.raises(ModelNotFoundError, match=message):
            load_scorer(folder, options=CPU)


def test_base_model_without_a_head_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = build_tiny(tmp_path / "headless", tokenizer="wordpiece")
    weights = {k: v for k, v in load_file(folder / "model.safetensors").items() if not k.startswith("classifier")}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelNotFoundError, match="lacks trained weights"):
        load_scorer(folder, options=CPU)
    assert_well_formed(load_transformer(folder, None, CPU, random_head=True).predict(["好"])[0])


def test_int8_runs_on_cpu(card_dir: Path, scorer: TransformerScorer) -> None:
    quantised = load_scorer(card_dir, options=RuntimeOptions(device="cpu", precision="int8"))
    assert isinstance(quantised, TransformerScorer) and quantised.precision == "int8"
    predictions, vectors = quantised.predict_with_embeddings(ODD_TEXTS)
    for prediction in predictions:
        assert_well_formed(prediction)
    signal = np.linalg.norm(vectors, axis=1) > 0
    np.testing.assert_allclose(np.linalg.norm(vectors[signal], axis=1), 1.0, atol=1e-5)
    assert quantised.model_version == scorer.model_version


def test_runtime_options_resolve() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("bf16", cpu) == "bf16"
    assert cpu_has_native_bf16("flags : fpu avx512f amx_bf16 amx_tile") and cpu_has_native_bf16("avx512_bf16")
    assert not cpu_has_native_bf16("flags : fpu avx2 avx512f") and not cpu_has_native_bf16("")
    with pytest.raises(RuntimeOptionsError, match="CPU only"):
        resolve_precision("int8", torch.device("cuda"))
    with pytest.raises(RuntimeOptionsError, match="unknown precision"):
        resolve_precision("fp8", cpu)
    with pytest.raises(RuntimeOptionsError, match="unknown device"):
        resolve_device("tpu-ish")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeOptionsError, match="no CUDA"):
            resolve_device("cuda")


async def test_scoring_runtime_batches_by_estimated_tokens(scorer: TransformerScorer) -> None:
    texts = ["服务很好", "😀", "这家店的服务太差了，再也不来了" * 3, "ok", "", "物流很快"] * 5
    runtime = ScoringRuntime(scorer, max_items=8, max_tokens=120, threads=1)
    try:
        results = await runtime.predict(texts)
    finally:
        runtime.close()
    # Other call groupings pad differently, which may move the last float bits, never the label.
    for result, direct in zip(results, scorer.predict(texts), strict=True):
        assert isinstance(result, Prediction) and result.label == direct.label
        assert result.probabilities.positive == pytest.approx(direct.probabilities.positive, abs=1e-5)
    assert runtime.queue_depth == 0
    assert runtime.stats.posts == len(texts) and max(runtime.stats.call_sizes) <= 8
    assert runtime.stats.model_calls > len(texts) // 8  # the token bound split calls further


async def test_queue_depth_counts_texts_waiting_for_the_model_thread() -> None:
    gate = threading.Event()

    class Slow:
        model_id, model_version = "slow", "0"

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            gate.wait(10)
            return [UNKNOWN] * len(texts)

    runtime = ScoringRuntime(Slow(), max_items=8, max_tokens=1000, threads=1)
    try:
        first = asyncio.ensure_future(runtime.predict(["a", "b"]))
        second = asyncio.ensure_future(runtime.predict(["c", "d", "e"]))
        for _ in range(200):  # the first call is in the model thread, the second waits behind it
            if runtime.queue_depth == 3:
                break
            await asyncio.sleep(0.01)
        assert runtime.queue_depth == 3
        gate.set()
        assert len(await first) == 2 and len(await second) == 3
        assert runtime.queue_depth == 0
    finally:
        gate.set()
        runtime.close()


def test_call_token_budget_follows_the_device_unless_set() -> None:
    from workers.runtime import CALL_TOKENS_CPU_TRANSFORMER, CALL_TOKENS_LARGE, call_token_budget

    class NoDevice:  # the baseline's shape: a scorer and nothing more
        model_id, model_version = "fake", "1"

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            return [UNKNOWN] * len(texts)

    class OnDevice(NoDevice):
        precision, parameter_counts = "fp32", {"total": 1, "embedding": 0}

        def __init__(self, device: str) -> None:
            self.device = torch.device(device)

    on_gpu, on_cpu = OnDevice("cuda"), OnDevice("cpu")
    assert call_token_budget(0, on_cpu) == CALL_TOKENS_CPU_TRANSFORMER
    assert call_token_budget(0, on_gpu) == CALL_TOKENS_LARGE
    assert call_token_budget(0, NoDevice()) == CALL_TOKENS_LARGE
    assert call_token_budget(700, on_cpu) == 700
