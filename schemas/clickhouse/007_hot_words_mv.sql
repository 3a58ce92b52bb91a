-- Two arrayJoins give every (subject, term) pair of a post; posts carry at most a few dozen terms.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hot_words_mv TO {db}.hot_words
AS SELECT
    minute,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(arrayJoin(terms) AS String) AS term,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
WHERE is_duplicate = 0 AND suspected_bot = 0
GROUP BY minute, subject, term
