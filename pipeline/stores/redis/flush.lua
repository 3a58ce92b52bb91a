-- One flush of RedisSink: counts a batch of scored posts into the live keys (schemas/redis.md).
--
-- ARGV[1] is a JSON header, every later ARGV one JSON document per post; both are built by
-- RedisSink in live.py and every value is read by name, so a new field touches no offsets.
--
-- It runs as one atomic script so that a post's "seen" marker and its counts change together:
-- a replayed batch never counts twice and a crash never leaves a batch half counted. Inside it,
-- only the markers are written post by post. The counts are summed first and written once per
-- key and field, each key's expiry set once, and each evidence set trimmed once: the same end
-- state as post-by-post writes, since nothing outside the script sees the steps, at a fraction
-- of the calls (a minute's posts share most of their keys and many of their terms).

-- JSON null decodes to cjson.null, which is truthy in Lua; absent and null both mean "none".
local function optional(value)
  if value == cjson.null then return nil end
  return value
end

-- sums[key][field] += 1, for a table of tables created on first use
local function bump(sums, key, field)
  local fields = sums[key]
  if not fields then fields = {}; sums[key] = fields end
  fields[field] = (fields[field] or 0) + 1
end

local header = cjson.decode(ARGV[1])
local seen_prefix, minute_prefix = header.seen_prefix, header.minute_prefix
local deduplicated_prefix, top_prefix = header.deduplicated_prefix, header.top_prefix
local hot_prefix, negative_prefix = header.hot_prefix, header.negative_prefix
local dropped_key, watermark_key = header.dropped_key, header.watermark_key
local marker_ttl, keep_posts = header.marker_ttl, header.keep_posts

local hash_sums, zset_sums = {}, {}  -- key -> field or member -> increment
local evidence = {}  -- neg key -> flat {score, member, score, member, ...} for one ZADD
local expiries = {}  -- key -> expire_at

-- The newest event time counted: the detectors follow it so that a backlog does not make them
-- close minutes still being counted.
local watermark = tonumber(redis.call('GET', watermark_key) or '0')
local counted = 0
for k = 2, #ARGV do
  local doc = cjson.decode(ARGV[k])
  local gate, found = optional(doc.gate), optional(doc.evidence)
  local subjects, terms, stamp, expire_at = doc.subjects, doc.terms, doc.stamp, doc.expire_at
  if redis.call('SET', seen_prefix .. doc.id, '1', 'NX', 'EX', marker_ttl) then
    -- A post the event-time gate refuses is still counted under its reason, but one too far in
    -- the future would open minutes nobody has reached yet, so it stays out of every live key.
    if gate then bump(hash_sums, dropped_key, gate) end
    if gate ~= 'too_far_future' then
      if doc.event_time > watermark then watermark = doc.event_time end
      local minute_key = minute_prefix .. stamp
      local deduplicated_key, top_key = deduplicated_prefix .. stamp, top_prefix .. stamp
      for j, pair in ipairs(subjects) do
        local subject = pair.subject
        bump(hash_sums, minute_key, pair.field)
        -- The first subject is the "*" total: every post counts under it once, but it is not a
        -- subject to rank nor to keep evidence for.
        if j > 1 then bump(zset_sums, top_key, subject) end
        -- Hot words and evidence come only from posts that count once per near-duplicate
        -- cluster and are not bots, so a flood of copies cannot make its own words hot.
        if doc.kept then
          bump(hash_sums, deduplicated_key, pair.field)
          if #terms > 0 then
            local hot_key = hot_prefix .. stamp .. ':' .. subject
            for _, term in ipairs(terms) do bump(zset_sums, hot_key, term) end
            expiries[hot_key] = expire_at
          end
          if found and j > 1 then
            local negative_key = negative_prefix .. stamp .. ':' .. subject
            local adds = evidence[negative_key]
            if not adds then adds = {}; evidence[negative_key] = adds end
            adds[#adds + 1] = doc.engagement
            adds[#adds + 1] = found
            expiries[negative_key] = expire_at
          end
        end
      end
      expiries[minute_key] = expire_at
      if doc.kept then expiries[deduplicated_key] = expire_at end
      if #subjects > 1 then expiries[top_key] = expire_at end
    end
    counted = counted + 1
  end
end

for key, fields in pairs(hash_sums) do
  for field, increment in pairs(fields) do redis.call('HINCRBY', key, field, increment) end
end
for key, members in pairs(zset_sums) do
  for member, increment in pairs(members) do redis.call('ZINCRBY', key, increment, member) end
end
-- Keeping the top keep_posts by (score, member) after all adds equals trimming after each one.
-- The adds go in slices, as unpack's arguments are bounded.
for key, adds in pairs(evidence) do
  for first = 1, #adds, 1000 do
    redis.call('ZADD', key, unpack(adds, first, math.min(first + 999, #adds)))
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -(keep_posts + 1))
end
for key, expire_at in pairs(expiries) do redis.call('EXPIREAT', key, expire_at) end
if watermark > 0 then redis.call('SET', watermark_key, watermark) end
return counted
