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
ORDER BY (minute, subject, platform, sentiment)
