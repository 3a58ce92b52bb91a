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
ORDER BY (subject, minute, term)
