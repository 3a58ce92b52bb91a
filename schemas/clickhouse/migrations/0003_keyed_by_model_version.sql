-- Every model version keeps its own verdict on a post, and the rollups are keyed by model version,
-- so history re-scored with another model sits beside the serving model's and never adds to it.
-- Released: never edit this file; change the schema in a new migration.
--
-- A sorting key cannot be altered, so the tables are rebuilt: the views feeding the old rollups are
-- dropped, the old tables renamed to *_v2 (kept, as they were, for a later release to drop), new
-- tables made under the old names with model_version in their keys, new views made on them, and
-- the old rows copied in (the copy feeds the new rollups through the new views).
-- Resumable, as every migration: the DROPs and CREATEs say IF EXISTS / IF NOT EXISTS, the runner
-- skips a RENAME whose target is already there (one table per RENAME statement), and a copy cut off
-- half-way and run again only repeats rows: the table replaces a repeated (minute, model_version,
-- post_id) and the rollups hold sets of post ids, so no count changes.
-- Counts of posts erased before this upgrade are not carried into the new rollups (the copy sees
-- only the rows left); the *_v2 rollups still hold them.

DROP TABLE IF EXISTS {db}.minute_rollup_mv;
DROP TABLE IF EXISTS {db}.minute_rollup_deduplicated_mv;
DROP TABLE IF EXISTS {db}.hot_words_mv;

RENAME TABLE {db}.scored_posts TO {db}.scored_posts_v2;
RENAME TABLE {db}.minute_rollup TO {db}.minute_rollup_v2;
RENAME TABLE {db}.minute_rollup_deduplicated TO {db}.minute_rollup_deduplicated_v2;
RENAME TABLE {db}.hot_words TO {db}.hot_words_v2;

-- One row per (post, model version): a replayed post collapses at merge time; readers count
-- distinct post ids of one model version, so they are exact before that merge.
CREATE TABLE IF NOT EXISTS {db}.scored_posts
(
    post_id        String,
    platform       String,
    author_id      String,
    text           String,
    text_truncated UInt8,
    event_time     DateTime('UTC'),
    minute         DateTime('UTC'),
    lang           String,
    url            String,
    parent_id      String,
    parent_kind    String,
    likes          UInt32,
    reposts        UInt32,
    comments       UInt32,
    hashtags       Array(String),
    subjects       Array(String),
    monitored      UInt8,
    detected_lang  String,
    terms          Array(String),
    cluster_id     String,
    is_duplicate   UInt8,
    suspected_bot  UInt8,
    noise_reasons  Array(String),
    sentiment      Enum8('negative' = 1, 'neutral' = 2, 'positive' = 3, 'unknown' = 4),
    p_negative     Float32,
    p_neutral      Float32,
    p_positive     Float32,
    model_id       String,
    model_version  String,
    scored_at      DateTime('UTC'),
    processing_ms  Float32
)
ENGINE = ReplacingMergeTree(scored_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, model_version, post_id);

CREATE TABLE IF NOT EXISTS {db}.minute_rollup
(
    minute        DateTime('UTC'),
    model_version String,
    subject       String,
    platform      String,
    sentiment     Enum8('negative' = 1, 'neutral' = 2, 'positive' = 3, 'unknown' = 4),
    posts         AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, model_version, subject, platform, sentiment);

CREATE TABLE IF NOT EXISTS {db}.minute_rollup_deduplicated
(
    minute        DateTime('UTC'),
    model_version String,
    subject       String,
    platform      String,
    sentiment     Enum8('negative' = 1, 'neutral' = 2, 'positive' = 3, 'unknown' = 4),
    posts         AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, model_version, subject, platform, sentiment);

CREATE TABLE IF NOT EXISTS {db}.hot_words
(
    minute        DateTime('UTC'),
    model_version String,
    subject       String,
    term          String,
    posts         AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (subject, model_version, minute, term);

-- New names: a resumed run must not drop these with the old views above.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.minute_rollup_by_version_mv TO {db}.minute_rollup
AS SELECT
    minute,
    CAST(model_version AS String) AS model_version,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(platform AS String) AS platform,
    sentiment,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
GROUP BY minute, model_version, subject, platform, sentiment;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.minute_rollup_deduplicated_by_version_mv TO {db}.minute_rollup_deduplicated
AS SELECT
    minute,
    CAST(model_version AS String) AS model_version,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(platform AS String) AS platform,
    sentiment,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
WHERE is_duplicate = 0 AND suspected_bot = 0
GROUP BY minute, model_version, subject, platform, sentiment;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hot_words_by_version_mv TO {db}.hot_words
AS SELECT
    minute,
    CAST(model_version AS String) AS model_version,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(arrayJoin(terms) AS String) AS term,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
WHERE is_duplicate = 0 AND suspected_bot = 0
GROUP BY minute, model_version, subject, term;

INSERT INTO {db}.scored_posts
(
    post_id, platform, author_id, text, text_truncated, event_time, minute, lang, url, parent_id, parent_kind,
    likes, reposts, comments, hashtags, subjects, monitored, detected_lang, terms, cluster_id, is_duplicate,
    suspected_bot, noise_reasons, sentiment, p_negative, p_neutral, p_positive, model_id, model_version,
    scored_at, processing_ms
)
SELECT
    post_id, platform, author_id, text, text_truncated, event_time, minute, lang, url, parent_id, parent_kind,
    likes, reposts, comments, hashtags, subjects, monitored, detected_lang, terms, cluster_id, is_duplicate,
    suspected_bot, noise_reasons, sentiment, p_negative, p_neutral, p_positive, model_id, model_version,
    scored_at, processing_ms
FROM {db}.scored_posts_v2
