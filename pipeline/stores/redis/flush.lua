-- One flush of RedisSink: counts a batch of scored posts into the live keys (schemas/redis.md).
--
-- ARGV[1] is a JSON header, every later ARGV one JSON document per post; both are built by
-- RedisSink in live.py and every value is read by name, so a new field touches no offsets.
--
-- It runs as one atomic script so that a post's "seen" marker and its counts change together:
-- a replayed batch never counts twice and a crash never leaves a batch half counted.

-- JSON null decodes to cjson.null, which is truthy in Lua; absent and null both mean "none".
local function optional(value)
  if value == cjson.null then return nil end
  return value
end

local header = cjson.decode(ARGV[1])
local seen_prefix, minute_prefix = header.seen_prefix, header.minute_prefix
local deduplicated_prefix, top_prefix = header.deduplicated_prefix, header.top_prefix
local hot_prefix, negative_prefix = header.hot_prefix, header.negative_prefix
local dropped_key, watermark_key = header.dropped_key, header.watermark_key
local marker_ttl, keep_posts = header.marker_ttl, header.keep_posts

-- The newest event time counted: the detectors follow it so that a backlog does not make them
-- close minutes still being counted.
local watermark = tonumber(redis.call('GET', watermark_key) or '0')
local counted = 0
for k = 2, #ARGV do
  local doc = cjson.decode(ARGV[k])
  local gate, evidence = optional(doc.gate), optional(doc.evidence)
  local subjects, terms, stamp, expire_at = doc.subjects, doc.terms, doc.stamp, doc.expire_at
  if redis.call('SET', seen_prefix .. doc.id, '1', 'NX', 'EX', marker_ttl) then
    -- A post the event-time gate refuses is still counted under its reason, but one too far in
    -- the future would open minutes nobody has reached yet, so it stays out of every live key.
    if gate then redis.call('HINCRBY', dropped_key, gate, 1) end
    if gate ~= 'too_far_future' then
      if doc.event_time > watermark then watermark = doc.event_time end
      local minute_key = minute_prefix .. stamp
      local deduplicated_key, top_key = deduplicated_prefix .. stamp, top_prefix .. stamp
      for j, pair in ipairs(subjects) do
        local subject = pair.subject
        redis.call('HINCRBY', minute_key, pair.field, 1)
        -- The first subject is the "*" total: every post counts under it once, but it is not a
        -- subject to rank nor to keep evidence for.
        if j > 1 then redis.call('ZINCRBY', top_key, 1, subject) end
        -- Hot words and evidence come only from posts that count once per near-duplicate
        -- cluster and are not bots, so a flood of copies cannot make its own words hot.
        if doc.kept then
          redis.call('HINCRBY', deduplicated_key, pair.field, 1)
          if #terms > 0 then
            local hot_key = hot_prefix .. stamp .. ':' .. subject
            for _, term in ipairs(terms) do redis.call('ZINCRBY', hot_key, 1, term) end
            redis.call('EXPIREAT', hot_key, expire_at)
          end
          if evidence and j > 1 then
            local negative_key = negative_prefix .. stamp .. ':' .. subject
            redis.call('ZADD', negative_key, doc.engagement, evidence)
            redis.call('ZREMRANGEBYRANK', negative_key, 0, -(keep_posts + 1))
            redis.call('EXPIREAT', negative_key, expire_at)
          end
        end
      end
      redis.call('EXPIREAT', minute_key, expire_at)
      if doc.kept then redis.call('EXPIREAT', deduplicated_key, expire_at) end
      if #subjects > 1 then redis.call('EXPIREAT', top_key, expire_at) end
    end
    counted = counted + 1
  end
end
if watermark > 0 then redis.call('SET', watermark_key, watermark) end
return counted
