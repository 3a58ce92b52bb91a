"""Re-scoring history with another model: the stored posts of a time window, read back from ClickHouse,
go through the worker's text and model stages again and are stored as that model version's verdicts.

What is re-done and what is kept
    The model's verdict is re-done: each post's text is cleaned as the worker cleans it (``clean``) and
    the model reads ``PreparedPost.model_text``, as in the score agent; ``build_scored`` makes the
    ScoredPost. What the stream decided stays as stored: the subjects (matched with the subject set in
    force then), the hot-word terms and the noise verdict (it depends on the order and company the
    posts arrived in, which a window read back does not have). So the two versions' counts differ by
    sentiment only, and a rollup of one version can be set against the other's.

Where it goes
    ClickHouse only, through ``ClickHouseSink``: its first-verdict rule is per (model version, post id),
    so a second run over the same window writes nothing, and the serving version's rows are left as
    they are. The live Redis counts stay the serving model's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pipeline.domain.noise.filter import NoiseVerdict
from pipeline.domain.text.clean import clean
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.clickhouse.sink import ClickHouseSink
from schemas.records import Engagement, Post, ScoredPost
from workers.scoring.protocol import Scorer
from workers.stages import PreparedPost, build_scored

BATCH = 256
READ_SPAN = timedelta(hours=1)  # posts read back per query: bounded memory on long windows


@dataclass(frozen=True)
class RescoreReport:
    model_id: str
    model_version: str
    since: datetime
    until: datetime
    read: int  # distinct stored posts in the window
    written: int  # new verdicts stored; 0 when the window was already re-scored with this version
    skipped: int  # posts whose text retention has cleared, or that today's post schema refuses

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "read": self.read,
            "written": self.written,
            "skipped": self.skipped,
        }


def stored_post(row: dict[str, Any]) -> Post | None:
    """The post as it arrived, from its ``scored_posts`` row; None when its text is gone (retention) or
    the row no longer makes a valid post."""
    if not row["text"]:
        return None
    try:
        return _post(row)
    except ValidationError:
        return None


def _post(row: dict[str, Any]) -> Post:
    return Post(
        id=row["post_id"],
        platform=row["platform"],
        author_id=row["author_id"],  # already pseudonymised when it was first scored
        text=row["text"],
        text_truncated=bool(int(row["text_truncated"])),
        event_time=row["event_time"],
        lang=row["lang"] or None,
        url=row["url"] or None,
        parent_id=row["parent_id"] or None,
        parent_kind=row["parent_kind"] or None,
        engagement=Engagement(likes=int(row["likes"]), reposts=int(row["reposts"]), comments=int(row["comments"])),
        hashtags=tuple(row["hashtags"]),
    )


def prepared_again(post: Post, row: dict[str, Any]) -> PreparedPost:
    """The worker's prepared post: the text cleaned again; terms and noise verdict as stored."""
    verdict = NoiseVerdict(
        cluster_id=row["cluster_id"] or post.id,
        is_duplicate=bool(int(row["is_duplicate"])),
        suspected_bot=bool(int(row["suspected_bot"])),
        reasons=tuple(row["noise_reasons"]),
    )
    return PreparedPost(post, clean(post.text), (), tuple(row["terms"]), verdict)


def rescore_rows(rows: Sequence[dict[str, Any]], scorer: Scorer) -> list[ScoredPost]:
    """The stored rows scored again by ``scorer`` (rows without text are left out)."""
    pairs = [(post, row) for row in rows if (post := stored_post(row)) is not None]
    prepared = [prepared_again(post, row) for post, row in pairs]
    started = time.perf_counter()
    predictions = scorer.predict([item.model_text for item in prepared]) if prepared else []
    elapsed_ms = (time.perf_counter() - started) * 1000 / max(len(prepared), 1)
    scored_at = datetime.now(UTC)
    model = (scorer.model_id, scorer.model_version)
    return [
        build_scored(
            item, prediction, (tuple(row["subjects"]), bool(int(row["monitored"]))), model, scored_at, elapsed_ms
        )
        for item, prediction, (_post, row) in zip(prepared, predictions, pairs, strict=True)
    ]


def spans(since: datetime, until: datetime, step: timedelta = READ_SPAN) -> Iterator[tuple[datetime, datetime]]:
    start = since
    while start < until:
        end = min(start + step, until)
        yield start, end
        start = end


def rescore(
    history: ClickHouseHistory,
    sink: ClickHouseSink,
    scorer: Scorer,
    since: datetime,
    until: datetime,
    *,
    batch: int = BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> RescoreReport:
    """Re-score the posts stored with ``since <= minute < until`` and store ``scorer``'s verdicts.

    ``on_progress`` hears the number of posts done so far after each batch."""
    read = written = skipped = 0
    for start, end in spans(since, until):
        rows = history.stored_posts(start, end)
        for first in range(0, len(rows), batch):
            chunk = rows[first : first + batch]
            scored = rescore_rows(chunk, scorer)
            skipped += len(chunk) - len(scored)
            sink.add(scored)
            before = sink.written
            sink.flush()
            written += sink.written - before
            read += len(chunk)
            if on_progress is not None:
                on_progress(read)
    return RescoreReport(scorer.model_id, scorer.model_version, since, until, read, written, skipped)
