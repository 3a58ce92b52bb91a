-- The deduplicated twin of minute_rollup: only posts that count once per near-duplicate cluster
-- and are not suspected bots (ScoredPost.counts_deduplicated). Alerts read this series, so a
-- copy-paste flood cannot fake a surge. Same set-of-ids design, so it is exact under replays.
CREATE TABLE IF NOT EXISTS {db}.minute_rollup_deduplicated
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
