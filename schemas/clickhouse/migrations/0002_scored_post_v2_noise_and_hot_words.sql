-- ScoredPost v2: what the noise filter and the subject matcher said, a deduplicated rollup and hot words.
-- Released: never edit this file; change the schema in a new migration.
-- One ADD COLUMN per statement: 18.16 has no ADD COLUMN IF NOT EXISTS, so the runner skips a column
-- that is already there, and a run cut off half-way resumes where it stopped.
ALTER TABLE {db}.scored_posts ADD COLUMN monitored UInt8 AFTER subjects;
ALTER TABLE {db}.scored_posts ADD COLUMN detected_lang String AFTER monitored;
ALTER TABLE {db}.scored_posts ADD COLUMN terms Array(String) AFTER detected_lang;
ALTER TABLE {db}.scored_posts ADD COLUMN cluster_id String AFTER terms;
ALTER TABLE {db}.scored_posts ADD COLUMN is_duplicate UInt8 AFTER cluster_id;
ALTER TABLE {db}.scored_posts ADD COLUMN suspected_bot UInt8 AFTER is_duplicate;
ALTER TABLE {db}.scored_posts ADD COLUMN noise_reasons Array(String) AFTER suspected_bot;

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
ORDER BY (minute, subject, platform, sentiment);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.minute_rollup_deduplicated_mv TO {db}.minute_rollup_deduplicated
AS SELECT
    minute,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(platform AS String) AS platform,
    sentiment,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
WHERE is_duplicate = 0 AND suspected_bot = 0
GROUP BY minute, subject, platform, sentiment;

-- Hot words per minute and subject: the posts (ids, so replays change nothing) using each term.
-- Only deduplicated posts count, as in the live store, so a flood's slogan is one voice.
CREATE TABLE IF NOT EXISTS {db}.hot_words
(
    minute  DateTime('UTC'),
    subject String,
    term    String,
    posts   AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (subject, minute, term);

-- Two arrayJoins give every (subject, term) pair of a post; posts carry at most a few dozen terms.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hot_words_mv TO {db}.hot_words
AS SELECT
    minute,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(arrayJoin(terms) AS String) AS term,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
WHERE is_duplicate = 0 AND suspected_bot = 0
GROUP BY minute, subject, term;
