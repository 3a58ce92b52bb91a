-- One batch of the shared noise filter: RedisNoiseFilter in noise.py; keys in schemas/redis.md.
--
-- ARGV[1]: a JSON header (key names, thresholds, expiries). ARGV[2]: the batch's MinHash
-- signatures back to back, num_perm big-endian uint32 each. ARGV[3..]: one JSON document per post
-- in stream order: id, author, t (event time, epoch s), repost, bucket (the verdict hash's suffix)
-- and, for a text long enough to take part, digest, bands and sig (its index in ARGV[2]).
-- Returns one verdict per post, a JSON array:
--   [cluster_id, is_duplicate, similarity, cluster_size, "reason,reason", author_burst]
--
-- The rules are the in-memory NoiseFilter's (pipeline/domain/noise), applied post by post, so both
-- give the same verdicts. Here the state is shared by every worker and a batch is one atomic step.
-- A post that already has a verdict (a batch replayed after a crash) gets it back and changes
-- nothing. Event time drives the windows, against watermarks kept in the meta hash. Each sorted
-- set scores its members with their time, so the state out of a window is found at once, and at a
-- cap the oldest goes, ties broken by member, as in memory (entry seqs are zero-padded for that).
--
-- Cost: a Redis command from Lua costs more than the Lua around it, so hashes are read through a
-- cache (what the batch will need is fetched up front, one HMGET per hash) and written back once
-- at the end (one HSET and one HDEL per hash). Sorted sets are written through, because eviction
-- asks them for ranges; their size and lowest score are tracked here, so a post with nothing to
-- evict costs no query.

local h = cjson.decode(ARGV[1])
local K = h.keys
local sigs = ARGV[2]
local num_perm = h.num_perm
local sig_bytes = 4 * num_perm
local sig_format = '>' .. string.rep('I4', num_perm)
local CHUNK = 1000 -- fields per command: Lua's unpack() has a stack limit

-- Lua would write numbers with 14 significant digits; event times need all 17.
local function num(x) return string.format('%.17g', x) end
local function identity(x) return x end

local function split(raw)
  local out = {}
  for seq in string.gmatch(raw, '[^,]+') do out[#out + 1] = seq end
  return out
end

-- A hash read through and written back; cache[field] is the decoded value, false when absent.
local function store(key, decode, encode)
  return { key = key, decode = decode, encode = encode, cache = {}, dirty = {} }
end

local function load(s, field)
  local value = s.cache[field]
  if value == nil then
    local raw = redis.call('HGET', s.key, field)
    value = raw and s.decode(raw) or false
    s.cache[field] = value
  end
  return value or nil
end

local function prefetch(s, fields)
  local wanted, asked = {}, {}
  for _, field in ipairs(fields) do
    if s.cache[field] == nil and not asked[field] then
      asked[field] = true
      wanted[#wanted + 1] = field
    end
  end
  for first = 1, #wanted, CHUNK do
    local part = { unpack(wanted, first, math.min(first + CHUNK - 1, #wanted)) }
    local values = redis.call('HMGET', s.key, unpack(part))
    for i, field in ipairs(part) do s.cache[field] = values[i] and s.decode(values[i]) or false end
  end
end

local function put(s, field, value)
  s.cache[field] = value
  s.dirty[field] = true
end

local function drop(s, field)
  s.cache[field] = false
  s.dirty[field] = true
end

local function flush(s)
  local sets, dels = {}, {}
  for field in pairs(s.dirty) do
    local value = s.cache[field]
    if value then
      sets[#sets + 1] = field
      sets[#sets + 1] = s.encode(value)
    else
      dels[#dels + 1] = field
    end
  end
  for first = 1, #sets, 2 * CHUNK do
    redis.call('HSET', s.key, unpack(sets, first, math.min(first + 2 * CHUNK - 1, #sets)))
  end
  for first = 1, #dels, CHUNK do
    redis.call('HDEL', s.key, unpack(dels, first, math.min(first + CHUNK - 1, #dels)))
  end
end

-- A sorted set of members by time, written through; oldest is a lower bound of its scores.
local function refresh(z)
  local first = redis.call('ZRANGE', z.key, 0, 0, 'WITHSCORES')
  z.oldest = first[2] and tonumber(first[2]) or math.huge
end

local function zset(key)
  local z = { key = key, count = redis.call('ZCARD', key) }
  refresh(z)
  return z
end

local function zadd(z, t, member, only_greater)
  if only_greater then
    z.count = z.count + redis.call('ZADD', z.key, 'GT', num(t), member)
  else
    z.count = z.count + redis.call('ZADD', z.key, num(t), member)
  end
  if t < z.oldest then z.oldest = t end
end

local function zrem(z, member) z.count = z.count - redis.call('ZREM', z.key, member) end

-- Every member older than cutoff goes, then the oldest beyond max_entries: together, a prefix of
-- the set in score order, read a few members at a time (remove() calls zrem).
local function evict(z, cutoff, remove)
  while z.oldest < cutoff or z.count > h.max_entries do
    local want = math.max(0, z.count - h.max_entries) + 8
    local peek = redis.call('ZRANGE', z.key, 0, want - 1, 'WITHSCORES')
    if #peek == 0 then
      z.oldest, z.count = math.huge, 0
      return
    end
    z.oldest = -math.huge -- not known until a member stays: another look unless the set ran out
    for i = 1, #peek, 2 do
      local score = tonumber(peek[i + 1])
      if score >= cutoff and z.count <= h.max_entries then
        z.oldest = score
        break
      end
      remove(peek[i])
    end
    if z.oldest == -math.huge and #peek < 2 * want then z.oldest = math.huge end
  end
end

-- Entries: [cluster id, packed signature, band keys, digests of exact copies that resolve to it].
local entries = store(K.entries, function(raw)
  local e = cmsgpack.unpack(raw)
  return { cluster = e[1], sig = e[2], bands = e[3], digests = e[4] }
end, function(e) return cmsgpack.pack({ e.cluster, e.sig, e.bands, e.digests }) end)
local exact = store(K.exact, identity, identity)
local lsh = store(K.lsh, split, function(members) return table.concat(members, ',') end)
local variants = store(K.variants, tonumber, function(n) return string.format('%d', n) end)
-- A cluster: [size, last time, flood until (false: never), recent copies flattened as
-- time, author, countable]. An author: their latest post times.
local clusters = store(K.clusters, cmsgpack.unpack, cmsgpack.pack)
local authors = store(K.authors, cmsgpack.unpack, cmsgpack.pack)
local seen, cluster_times, author_times = zset(K.seen), zset(K.cluster_times), zset(K.author_times)
local verdict_stores = {}

local function verdicts(bucket)
  local s = verdict_stores[bucket]
  if not s then
    s = store(K.verdicts_prefix .. bucket, identity, identity)
    verdict_stores[bucket] = s
  end
  return s
end

local meta = redis.call('HMGET', K.meta, 'next', 'wm_index', 'wm_author')
local next_seq = tonumber(meta[1]) or 0
-- Two watermarks, as in memory: the index and the flood tracker see only posts long enough to
-- take part, the burst tracker sees every post.
local wm_index = tonumber(meta[2]) or -math.huge
local wm_author = tonumber(meta[3]) or -math.huge

local function values_of(e)
  if not e.values then
    e.values = { struct.unpack(sig_format, e.sig) }
    e.values[num_perm + 1] = nil -- struct.unpack also returns the next position
  end
  return e.values
end

local function remove_entry(seq)
  zrem(seen, seq)
  local e = load(entries, seq)
  if not e then return end
  drop(entries, seq)
  for _, band in ipairs(e.bands) do
    local members = load(lsh, band)
    if members then
      local kept = {}
      for _, member in ipairs(members) do
        if member ~= seq then kept[#kept + 1] = member end
      end
      if #kept == 0 then drop(lsh, band) elseif #kept < #members then put(lsh, band, kept) end
    end
  end
  for _, digest in ipairs(e.digests) do
    if load(exact, digest) == seq then drop(exact, digest) end
  end
  local left = (load(variants, e.cluster) or 0) - 1
  if left <= 0 then drop(variants, e.cluster) else put(variants, e.cluster, left) end
end

local function add_entry(cluster, t, doc, sig)
  next_seq = next_seq + 1
  local seq = string.format('%012d', next_seq)
  put(entries, seq, { cluster = cluster, sig = sig, bands = doc.bands, digests = { doc.digest } })
  zadd(seen, t, seq)
  for _, band in ipairs(doc.bands) do
    local members = load(lsh, band) or {}
    members[#members + 1] = seq
    -- A bucket keeps its newest entries only: the candidates of a post, hence the time this
    -- script holds Redis, stay bounded whatever the input.
    if #members > h.max_bucket then table.remove(members, 1) end
    put(lsh, band, members)
  end
  put(exact, doc.digest, seq)
  put(variants, cluster, (load(variants, cluster) or 0) + 1)
  evict(seen, wm_index - h.window_s, remove_entry)
end

-- NearDuplicateIndex.assign_signed: the post's cluster, whether it is a copy, and how close.
local function assign(doc, t)
  if t > wm_index then wm_index = t end
  evict(seen, wm_index - h.window_s, remove_entry)
  local hit = load(exact, doc.digest)
  if hit then
    local e = load(entries, hit)
    if e then
      zadd(seen, t, hit, true)
      return e.cluster, true, 1
    end
    drop(exact, doc.digest) -- a leftover of an entry that expired
  end
  local found, candidates = {}, {}
  for _, band in ipairs(doc.bands) do
    for _, seq in ipairs(load(lsh, band) or {}) do
      if not found[seq] then
        found[seq] = true
        candidates[#candidates + 1] = seq
      end
    end
  end
  table.sort(candidates) -- oldest first: of equally close entries the oldest wins, as in memory
  local sig = string.sub(sigs, doc.sig * sig_bytes + 1, (doc.sig + 1) * sig_bytes)
  local best_seq, best, best_entry, best_same = nil, 0, nil, 0
  if #candidates > 0 then
    local mine = values_of({ sig = sig })
    for _, seq in ipairs(candidates) do
      local e = load(entries, seq)
      if e then
        -- Counted until this candidate can no longer beat the best (the first best wins ties).
        local theirs, same, misses, allowed = values_of(e), 0, 0, num_perm - best_same - 1
        for i = 1, num_perm do
          if theirs[i] == mine[i] then
            same = same + 1
          else
            misses = misses + 1
            if misses > allowed then break end
          end
        end
        if same > best_same then best_seq, best_same, best_entry = seq, same, e end
        if best_same == num_perm then break end
      end
    end
    best = best_same / num_perm
  end
  if best_seq == nil or best < h.threshold then
    add_entry(doc.id, t, doc, sig)
    return doc.id, false, 0
  end
  local e = best_entry
  zadd(seen, t, best_seq, true)
  if best < h.near_identical and (load(variants, e.cluster) or 0) < h.max_variants then
    add_entry(e.cluster, t, doc, sig)
  elseif #e.digests < h.max_exact then
    e.digests[#e.digests + 1] = doc.digest -- its exact repeats take the fast path next time
    put(entries, best_seq, e)
    put(exact, doc.digest, best_seq)
  end
  return e.cluster, true, best
end

local function forget_author(author)
  drop(authors, author)
  zrem(author_times, author)
end

-- AuthorBursts.observe: the author's latest max_posts + 1 times; a burst is all of them within
-- the window.
local function observe_author(author, t)
  if t > wm_author then wm_author = t end
  local times = load(authors, author) or {}
  times[#times + 1] = t
  if #times > h.burst_max_posts + 1 then table.remove(times, 1) end
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(times) do
    if x < lo then lo = x end
    if x > hi then hi = x end
  end
  put(authors, author, times)
  zadd(author_times, hi, author)
  evict(author_times, wm_author - h.burst_window_s, forget_author)
  return #times > h.burst_max_posts and hi - lo <= h.burst_window_s
end

local function forget_cluster(cluster)
  drop(clusters, cluster)
  zrem(cluster_times, cluster)
end

-- FloodTracker.observe: size, flood (sticky), and whether this author repeats the cluster.
local function observe_cluster(cluster, author, t, countable)
  local c = load(clusters, cluster) or { 0, t, false, {} }
  local members = c[4]
  c[1] = c[1] + 1
  if t > c[2] then c[2] = t end
  members[#members + 1] = t
  members[#members + 1] = author
  members[#members + 1] = countable
  while #members > 3 * h.flood_keep do
    for _ = 1, 3 do table.remove(members, 1) end
  end
  local since, seen_authors, distinct, mine = t - h.flood_window_s, {}, 0, 0
  for i = 1, #members, 3 do
    if members[i] >= since then
      local who = members[i + 1]
      if members[i + 2] and not seen_authors[who] then
        seen_authors[who] = true
        distinct = distinct + 1
      end
      if who == author then mine = mine + 1 end
    end
  end
  if distinct >= h.flood_min_authors then
    local until_t = t + h.flood_sticky_s
    if not c[3] or until_t > c[3] then c[3] = until_t end
  end
  local size, flood = c[1], (c[3] and t <= c[3]) or false
  put(clusters, cluster, c)
  zadd(cluster_times, c[2], cluster)
  evict(cluster_times, wm_index - math.max(h.flood_window_s, h.flood_sticky_s), forget_cluster)
  return size, flood, mine >= h.repeat_min
end

local docs = {}
for k = 3, #ARGV do docs[#docs + 1] = cjson.decode(ARGV[k]) end

-- What the batch will read, fetched up front: verdicts (replays), exact digests, LSH buckets,
-- authors, and clusters named after the batch's posts (a post that starts a cluster names it).
local ids_by_bucket, digests, bands, names, ids = {}, {}, {}, {}, {}
for _, doc in ipairs(docs) do
  local bucket_ids = ids_by_bucket[doc.bucket] or {}
  ids_by_bucket[doc.bucket] = bucket_ids
  bucket_ids[#bucket_ids + 1] = doc.id
  ids[#ids + 1] = doc.id
  names[#names + 1] = doc.author
  if doc.digest then
    digests[#digests + 1] = doc.digest
    for _, band in ipairs(doc.bands) do bands[#bands + 1] = band end
  end
end
-- And the entries the batch will likely evict, the oldest (out of the window by its last post, or
-- beyond the cap once its posts are added), with what removing them touches.
local latest, added = wm_index, 0
for _, doc in ipairs(docs) do
  if doc.digest then
    added = added + 1
    if doc.t > latest then latest = doc.t end
  end
end
local doomed = {}
if added > 0 then
  local stale = 0
  if seen.oldest < latest - h.window_s then
    stale = redis.call('ZCOUNT', seen.key, '-inf', '(' .. num(latest - h.window_s))
  end
  local likely = math.min(CHUNK, stale + math.max(0, seen.count + added - h.max_entries))
  if likely > 0 then doomed = redis.call('ZRANGE', seen.key, 0, likely - 1) end
end
prefetch(entries, doomed)
local clusters_of = {}
for _, seq in ipairs(doomed) do
  local e = load(entries, seq)
  if e then
    clusters_of[#clusters_of + 1] = e.cluster
    for _, band in ipairs(e.bands) do bands[#bands + 1] = band end
    for _, digest in ipairs(e.digests) do digests[#digests + 1] = digest end
  end
end
for bucket, bucket_ids in pairs(ids_by_bucket) do prefetch(verdicts(bucket), bucket_ids) end
prefetch(exact, digests)
prefetch(lsh, bands)
prefetch(authors, names)
prefetch(clusters, ids)
for _, id in ipairs(ids) do clusters_of[#clusters_of + 1] = id end
prefetch(variants, clusters_of)

local out, changed = {}, false
for _, doc in ipairs(docs) do
  local given = verdicts(doc.bucket)
  local verdict = load(given, doc.id)
  if not verdict then
    local t, indexed = doc.t, doc.digest ~= nil
    local cluster, duplicate, similarity, size, flood, repeated = doc.id, false, 0, 1, false, false
    if indexed then cluster, duplicate, similarity = assign(doc, t) end
    local burst = observe_author(doc.author, t)
    if indexed then size, flood, repeated = observe_cluster(cluster, doc.author, t, not doc.repost) end
    local reasons = {} -- noise_reasons() in filter.py
    if flood and duplicate then reasons[#reasons + 1] = 'flood' end
    if repeated then reasons[#reasons + 1] = 'repeat' end
    if burst and duplicate then reasons[#reasons + 1] = 'burst' end
    verdict = cjson.encode({ cluster, duplicate, similarity, size, table.concat(reasons, ','), burst })
    put(given, doc.id, verdict)
    changed = true
  end
  out[#out + 1] = verdict
end

if changed then
  for _, s in ipairs({ entries, exact, lsh, variants, clusters, authors }) do flush(s) end
  for _, s in pairs(verdict_stores) do flush(s) end
  local fields = { 'next', string.format('%d', next_seq) }
  if wm_index > -math.huge then
    fields[#fields + 1] = 'wm_index'
    fields[#fields + 1] = num(wm_index)
  end
  if wm_author > -math.huge then
    fields[#fields + 1] = 'wm_author'
    fields[#fields + 1] = num(wm_author)
  end
  redis.call('HSET', K.meta, unpack(fields))
  -- Wall-clock expiry on every key: state nobody touched for a window is worth nothing, and goes.
  for _, key in ipairs({ K.entries, K.seen, K.exact, K.lsh, K.variants }) do redis.call('EXPIRE', key, h.ttl_index) end
  for _, key in ipairs({ K.clusters, K.cluster_times }) do redis.call('EXPIRE', key, h.ttl_flood) end
  for _, key in ipairs({ K.authors, K.author_times }) do redis.call('EXPIRE', key, h.ttl_burst) end
  redis.call('EXPIRE', K.meta, h.ttl_meta)
  for _, s in pairs(verdict_stores) do
    if next(s.dirty) then redis.call('EXPIRE', s.key, h.ttl_verdict) end
  end
end
return out
