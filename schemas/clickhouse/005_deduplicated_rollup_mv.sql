CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.minute_rollup_deduplicated_mv TO {db}.minute_rollup_deduplicated
AS SELECT
    minute,
    CAST(arrayJoin(subjects) AS String) AS subject,
    CAST(platform AS String) AS platform,
    sentiment,
    uniqExactState(post_id) AS posts
FROM {db}.scored_posts
WHERE is_duplicate = 0 AND suspected_bot = 0
GROUP BY minute, subject, platform, sentiment
