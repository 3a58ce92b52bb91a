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
GROUP BY minute, subject, platform, sentiment
