"""Stage functions of the workers: decode, prepare (clean, segment, noise), assign subjects, build.

The score agent runs them in this order for each micro-batch::

    decode_posts → prepare_post (clean → segment → noise verdict) → model on ``model_text``
                 → assign_subjects (monitored subjects, else hashtags, else ``_all``) → build_scored

Everything here is a plain function of its inputs, except the noise filter's bounded recent
state, which ``prepare_post`` updates (so it runs in one thread, in stream order).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic import ValidationError

from pipeline.domain.noise.filter import NoiseFilter, NoiseVerdict
from pipeline.domain.posts import parse_post, pseudonymise, reject
from pipeline.domain.subjects.match import match_subjects
from pipeline.domain.subjects.model import SubjectSet
from pipeline.domain.text.clean import CleanText, clean
from pipeline.domain.text.segment import Segmenter, hot_terms
from pipeline.observability.timing import StageClock
from schemas.records import Post, Rejection, ScoredPost
from workers.scoring.protocol import Prediction

NO_SUBJECT = "_all"


@dataclass(frozen=True, slots=True)
class PreparedPost:
    """A post with what the text stages found, ready for the model."""

    post: Post
    clean: CleanText
    tokens: tuple[str, ...]
    terms: tuple[str, ...]  # distinct hot-word terms, in order of first use
    verdict: NoiseVerdict

    @property
    def model_text(self) -> str:
        """What the model reads: the post's own words (or, for a pure repost, the words passed on)."""
        return self.clean.content or self.post.text


def prepare_post(
    post: Post, segmenter: Segmenter, noise: NoiseFilter, max_terms: int, clock: StageClock | None = None
) -> PreparedPost:
    """``clock``: where the time of each of the three steps is added (clean, segment, noise)."""
    started = time.perf_counter()
    cleaned = clean(post.text)
    cleaned_at = time.perf_counter()
    tokens = tuple(segmenter.tokens(cleaned))
    terms = tuple(dict.fromkeys(hot_terms(tokens)))[:max_terms]
    segmented_at = time.perf_counter()
    verdict = noise.observe(
        post.id, post.author_id, cleaned.content, post.event_time, repost=post.parent_kind == "repost"
    )
    if clock is not None:
        clock.add("clean", cleaned_at - started)
        clock.add("segment", segmented_at - cleaned_at)
        clock.add("noise", time.perf_counter() - segmented_at)
    return PreparedPost(post, cleaned, tokens, terms, verdict)


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


def decode_scored(raws: list[bytes]) -> tuple[list[ScoredPost], list[Rejection]]:
    scored: list[ScoredPost] = []
    rejections: list[Rejection] = []
    for raw in raws:
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
