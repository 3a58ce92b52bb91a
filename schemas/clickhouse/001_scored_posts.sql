-- One row per scored post (ScoredPost v2): the history of what the model and the noise filter said.
-- ReplacingMergeTree keyed by (minute, post_id): a replayed post id collapses into one row at
-- merge time; readers count distinct post ids, so they are exact even before that merge.
-- Written for ClickHouse 18.16 and current releases alike: no TTL, no DateTime64, no LowCardinality.
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
ORDER BY (minute, post_id)
