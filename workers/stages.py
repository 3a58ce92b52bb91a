"""Stage functions of the workers: decode, prepare (clean, segment, noise), assign subjects, build.

The score agent runs them in this order for each micro-batch::

    decode_posts → analyse_batch (clean → segment → hot terms → sign → a stacked model's TF-IDF half)
                 → noise verdicts → model on ``model_text``
                 → assign_subjects (monitored subjects, else hashtags, else ``_all``) → build_scored

Everything here is a plain function of its inputs, except the noise filter's recent state, which
``prepare_posts`` updates (so batches reach it in stream order). ``analyse_batch`` has no state
beyond the segmenter's terms, so it may run in other processes (``workers.text_pool``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import numpy as np
from pydantic import ValidationError

from pipeline.domain.noise.filter import NoiseInput, NoiseVerdict, ObservesNoise
from pipeline.domain.noise.signature import Signature, Signer
from pipeline.domain.posts import parse_post, pseudonymise, reject
from pipeline.domain.subjects.match import match_subjects
from pipeline.domain.subjects.model import SubjectSet
from pipeline.domain.text.clean import CleanText, clean
from pipeline.domain.text.segment import Segmenter, distinct_hot_terms
from pipeline.observability.timing import StageClock
from schemas.records import Post, Rejection, ScoredPost
from workers.scoring.protocol import Prediction, Scorer

NO_SUBJECT = "_all"


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    """What the text stages find in a post's text."""

    clean: CleanText
    tokens: tuple[str, ...]
    terms: tuple[str, ...]  # distinct hot-word terms, in order of first use
    signature: Signature | None  # of the own words, for the noise filter; None: too short to take part
    companion: Prediction | None = None  # a stacked model's TF-IDF half's, of the model's text


@dataclass(frozen=True, slots=True)
class PreparedPost:
    """A post with what the text stages found, ready for the model."""

    post: Post
    clean: CleanText
    tokens: tuple[str, ...]
    terms: tuple[str, ...]  # distinct hot-word terms, in order of first use
    verdict: NoiseVerdict
    companion: Prediction | None = None  # a stacked model's TF-IDF half's, of ``model_text``

    @property
    def model_text(self) -> str:
        """What the model reads: the post's own words (or, for a pure repost, the words passed on)."""
        return self.clean.content or self.post.text


def analyse_batch(
    texts: Sequence[str],
    segmenter: Segmenter,
    signer: Signer,
    max_terms: int,
    clock: StageClock | None = None,
    companion: Scorer | None = None,
) -> list[TextAnalysis]:
    """Clean, segment and pick the hot terms of each text, then sign the own words of all of them for
    the noise filter (``signer``: the filter's), and score what the model will read with ``companion``,
    a stacked model's TF-IDF half, here rather than in the model's thread; ``clock`` gets the time of
    each."""
    started = time.perf_counter()
    cleaned = [clean(text) for text in texts]
    cleaned_at = time.perf_counter()
    tokens = [tuple(segmenter.tokens(found)) for found in cleaned]
    terms = [distinct_hot_terms(words, max_terms) for words in tokens]
    segmented_at = time.perf_counter()
    signatures = signer.sign_many([found.content for found in cleaned])
    signed_at = time.perf_counter()
    companions: Sequence[Prediction | None] = [None] * len(texts)
    if companion is not None:  # on the model's text: PreparedPost.model_text
        companions = companion.predict([found.content or text for found, text in zip(cleaned, texts, strict=True)])
    if clock is not None:
        clock.add("clean", cleaned_at - started, len(texts))
        clock.add("segment", segmented_at - cleaned_at, len(texts))
        clock.add("signature", signed_at - segmented_at, len(texts))
        clock.add("stack", time.perf_counter() - signed_at, len(texts))
    return [TextAnalysis(*found) for found in zip(cleaned, tokens, terms, signatures, companions, strict=True)]


def prepare_posts(
    posts: Sequence[Post], analyses: Sequence[TextAnalysis], noise: ObservesNoise, clock: StageClock | None = None
) -> list[PreparedPost]:
    """The noise verdicts of a batch, in stream order, joined to the posts and their text analyses."""
    started = time.perf_counter()
    inputs = [
        NoiseInput(
            p.id,
            p.author_id,
            found.clean.content,
            p.event_time.timestamp(),
            p.parent_kind == "repost",
            found.signature,
            True,
        )
        for p, found in zip(posts, analyses, strict=True)
    ]
    verdicts = noise.observe_batch(inputs)
    if clock is not None:
        clock.add("noise", time.perf_counter() - started, len(posts))
    return [
        PreparedPost(post, found.clean, found.tokens, found.terms, verdict, found.companion)
        for post, found, verdict in zip(posts, analyses, verdicts, strict=True)
    ]


def prepare_post(
    post: Post, segmenter: Segmenter, noise: ObservesNoise, max_terms: int, clock: StageClock | None = None
) -> PreparedPost:
    """One post through the text stages and the noise filter (a batch of one)."""
    return prepare_posts([post], analyse_batch([post.text], segmenter, noise.signer, max_terms, clock), noise, clock)[0]


def companions_of(prepared: Sequence[PreparedPost]) -> list[Prediction] | None:
    """A stacked model's TF-IDF predictions of the batch's model texts, when the text stages made them
    for every post; None otherwise, and the model makes them itself."""
    found = [item.companion for item in prepared]
    return None if None in found else cast(list[Prediction], found)


def subjects_of(post: Post) -> tuple[str, ...]:
    """Subjects of a post no monitored subject matched: its hashtags, or ``_all`` without any."""
    return tuple(dict.fromkeys(post.hashtags)) or (NO_SUBJECT,)


def assign_subjects(
    prepared: PreparedPost,
    subjects: SubjectSet,
    embedding: np.ndarray | None = None,
    description_embeddings: Mapping[str, np.ndarray] | None = None,
) -> tuple[tuple[str, ...], bool]:
    """The subjects a post counts under, and whether they are monitored ones."""
    post = prepared.post
    tokens = [*prepared.tokens, *post.hashtags]  # a feed's own hashtags match as whole terms
    monitored = match_subjects(
        prepared.clean, tokens, subjects, embedding, dict(description_embeddings or {}), platform=post.platform
    )
    return (monitored, True) if monitored else (subjects_of(post), False)


def decode_posts(raws: list[bytes], max_chars: int, author_key: bytes = b"") -> tuple[list[Post], list[Rejection]]:
    """Re-validate what arrives on posts.raw, and pseudonymise authors with ``author_key`` when set:
    producers other than ours may write there."""
    posts: list[Post] = []
    rejections: list[Rejection] = []
    for raw in raws:
        result = parse_post(raw, max_chars)
        if isinstance(result, Post):
            posts.append(pseudonymise(result, author_key))
        else:
            rejections.append(result.model_copy(update={"stage": "score"}))
    return posts, rejections


def decode_scored(
    raws: list[bytes], handed_over: Callable[[bytes], ScoredPost | None] | None = None
) -> tuple[list[ScoredPost], list[Rejection]]:
    """``handed_over``: the post this process serialised as exactly these bytes, if it still holds it."""
    scored: list[ScoredPost] = []
    rejections: list[Rejection] = []
    for raw in raws:
        known = handed_over(raw) if handed_over is not None else None
        if known is not None:
            scored.append(known)
            continue
        try:
            scored.append(ScoredPost.model_validate_json(raw))
        except ValidationError as exc:
            rejections.append(reject(raw, f"invalid scored post: {exc.errors()[0]['msg']}", stage="aggregate"))
    return scored, rejections


def build_scored(
    prepared: PreparedPost,
    prediction: Prediction,
    subjects: tuple[tuple[str, ...], bool],
    model: tuple[str, str],
    scored_at: datetime,
    processing_ms: float,
) -> ScoredPost:
    """``subjects`` as ``assign_subjects`` gives them; ``model`` is (model id, model version)."""
    verdict = prepared.verdict
    model_id, model_version = model
    return ScoredPost(
        post=prepared.post,
        sentiment=prediction.label,
        probabilities=prediction.probabilities,
        subjects=subjects[0],
        monitored=subjects[1],
        lang=prepared.clean.lang,
        terms=prepared.terms,
        cluster_id=verdict.cluster_id,
        duplicate=verdict.is_duplicate,
        suspected_bot=verdict.suspected_bot,
        noise_reasons=verdict.reasons,
        model_id=model_id,
        model_version=model_version,
        scored_at=scored_at,
        processing_ms=processing_ms,
    )
