"""Pure stage functions of the workers: decode records, attach subjects, build scored posts."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from pipeline.ingest.validate import parse_post, reject
from schemas.records import Post, Rejection, ScoredPost
from workers.scoring import Prediction

NO_SUBJECT = "_all"


def subjects_of(post: Post) -> tuple[str, ...]:
    """Until monitored subjects exist, a post counts under its hashtags, or ``_all`` without any."""
    return tuple(dict.fromkeys(post.hashtags)) or (NO_SUBJECT,)


def decode_posts(raws: list[bytes], max_chars: int) -> tuple[list[Post], list[Rejection]]:
    """Re-validate what arrives on posts.raw: producers other than ours may write there."""
    posts: list[Post] = []
    rejections: list[Rejection] = []
    for raw in raws:
        result = parse_post(raw, max_chars)
        if isinstance(result, Post):
            posts.append(result)
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
    post: Post, prediction: Prediction, model_id: str, model_version: str, scored_at: datetime, processing_ms: float
) -> ScoredPost:
    return ScoredPost(
        post=post,
        sentiment=prediction.label,
        probabilities=prediction.probabilities,
        subjects=subjects_of(post),
        model_id=model_id,
        model_version=model_version,
        scored_at=scored_at,
        processing_ms=processing_ms,
    )
