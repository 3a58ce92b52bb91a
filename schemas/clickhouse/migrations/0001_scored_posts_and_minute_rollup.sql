-- The first released schema (ScoredPost v1): scored posts and their minute rollup.
-- Released: never edit this file; change the schema in a new migration.
-- Written for ClickHouse 18.16 and current releases alike: no TTL, no DateTime64, no LowCardinality.

-- One row per scored post: the history of what the model said.
-- ReplacingMergeTree keyed by (minute, post_id): a replayed post id collapses into one row at
-- merge time; readers count distinct post ids, so they are exact even before that merge.
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
ORDER BY (minute, post_id);

-- Posts per minute per (subject, platform, sentiment), kept as sets of post ids
-- (uniqExact states): merging a replayed post id into a set it is already in changes nothing,
-- so the rollup stays exact under replays without reading scored_posts.
CREATE TABLE IF NOT EXISTS {db}.minute_rollup
(
    minute    DateTime('UTC'),
    subject   String,
    platform  String,
    sentiment Enum8('negative' = 1, 'neutral' = 2, 'positive' = 3, 'unknown' = 4),
    posts     AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, subject, platform, sentiment);

-- Feeds minute_rollup from every insert into scored_posts, one row per subject of a post.
-- The CASTs are for ClickHouse 18.16, where a view feeding a String column must name its type.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.minute_rollup_mv TO {db}.minute_rollup
AS SELECT
    minute,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(platform AS String) AS platform,
    sentiment,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
GROUP BY minute, subject, platform, sentiment;
