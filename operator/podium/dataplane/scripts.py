"""Lua scripts of the bus. Each touches only keys of one agent (one hash tag), passed in KEYS.

Time comes from Redis (``TIME``) so that heartbeat leases do not depend on the replicas' clocks.
Inbox entries carry the task JSON in field ``t``; an entry is deleted when it is acknowledged, so the
inbox length is exactly the agent's backlog (undelivered + in flight) and stays bounded by it.
"""

from __future__ import annotations

# KEYS: inbox.  ARGV: task json, max queue length.
DISPATCH = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  return redis.error_reply('QUEUEFULL inbox ' .. KEYS[1] .. ' holds ' .. ARGV[2] .. ' tasks')
end
return redis.call('XADD', KEYS[1], '*', 't', ARGV[1])
"""

# KEYS: inbox, result key, dedupe key, results stream.
# ARGV: group, entry id, result json, ttl seconds, results maxlen, task id.
# Returns 1 when the result was recorded, 0 when this task id + attempt was already recorded.
COMPLETE = """
local fresh = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if not fresh then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'i', ARGV[6], 'r', ARGV[3])
return 1
"""

# KEYS: heartbeats hash.  ARGV: replica, load, in_flight, lease ms.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. string.format('%d', now) .. ' ' .. ARGV[4])
local keep = tonumber(ARGV[4]) * 3
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return now
"""

# KEYS: heartbeats hash.  Returns [now_ms, replica, value, ...] of live replicas; drops lapsed ones.
LIVE_REPLICAS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {tostring(now)}
local hb = redis.call('HGETALL', KEYS[1])
for i = 1, #hb, 2 do
  local _, _, seen, lease = string.find(hb[i + 1], '^%S+ %S+ (%d+) (%d+)$')
  if seen and tonumber(seen) + tonumber(lease) >= now then
    out[#out + 1] = hb[i]
    out[#out + 1] = hb[i + 1]
  else
    redis.call('HDEL', KEYS[1], hb[i])
  end
end
return out
"""

# KEYS: inbox, heartbeats, dlq.
# ARGV: group, me, max deliveries, max entries, dlq maxlen, min idle ms.
# Claims to ``me`` the pending entries of consumers whose heartbeat lapsed (or who never sent one) and
# who have been idle for min idle ms; entries already delivered max deliveries times go to the dlq.
# Consumers that are gone and hold nothing are deleted. Returns {claimed entries..., dead-lettered count}
# where each claimed entry is {id, fields, deliveries}.
RECLAIM = """
local group, me = ARGV[1], ARGV[2]
local maxd, budget, dlqlen, minidle = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = {}
local hb = redis.call('HGETALL', KEYS[2])
for i = 1, #hb, 2 do
  local _, _, seen, lease = string.find(hb[i + 1], '^%S+ %S+ (%d+) (%d+)$')
  if seen and tonumber(seen) + tonumber(lease) >= now then alive[hb[i]] = true
  else redis.call('HDEL', KEYS[2], hb[i]) end
end
alive[me] = true
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], group)
if not ok then return {{}, 0} end
local claimed, dead = {}, 0
for _, c in ipairs(consumers) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  local name, pending, idle = info['name'], tonumber(info['pending']), tonumber(info['idle'])
  if not alive[name] and idle >= minidle then
    if pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], group, name)
    elseif budget > 0 then
      local entries = redis.call('XPENDING', KEYS[1], group, '-', '+', budget, name)
      for _, e in ipairs(entries) do
        local id, n = e[1], tonumber(e[4])
        if n >= maxd then
          local rows = redis.call('XRANGE', KEYS[1], id, id)
          local raw = ''
          if #rows > 0 then
            local f = rows[1][2]
            for k = 1, #f, 2 do if f[k] == 't' then raw = f[k + 1] end end
          end
          redis.call('XADD', KEYS[3], 'MAXLEN', '~', dlqlen, '*', 'entry', id, 'reason',
            'delivered ' .. n .. ' times (max ' .. maxd .. '); each consumer died or lost its lease first',
            'raw', raw, 'deliveries', tostring(n), 'at', tostring(now))
          redis.call('XACK', KEYS[1], group, id)
          redis.call('XDEL', KEYS[1], id)
          dead = dead + 1
        else
          local got = redis.call('XCLAIM', KEYS[1], group, me, 0, id)
          if #got > 0 then claimed[#claimed + 1] = {got[1][1], got[1][2], n + 1} end
        end
        budget = budget - 1
      end
    end
  end
end
return {claimed, dead}
"""

# KEYS: inbox, dlq.  ARGV: group, entry id, reason, raw, deliveries, dlq maxlen.
DEAD_LETTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'entry', ARGV[2], 'reason', ARGV[3], 'raw', ARGV[4],
  'deliveries', ARGV[5], 'at', tostring(now))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS: inbox.  ARGV: group, entry id, me.
# Hands an unstarted entry back: re-appended as a new entry so any replica's next read gets it now.
# Does nothing (returns false) when the entry is no longer pending on ``me``.
RELEASE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
if #p == 0 then return false end
local rows = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #rows == 0 then return false end
return redis.call('XADD', KEYS[1], '*', unpack(rows[1][2]))
"""

# KEYS: inbox, heartbeats.  ARGV: group, me.  Returns the number of entries still pending on ``me``.
LEAVE = """
redis.call('HDEL', KEYS[2], ARGV[2])
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if not ok then return 0 end
if #p == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
local s = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000000, ARGV[2])
return #s
"""

# Batched forms: one script call for many tasks of one agent (same keys, same guarantees, one round trip
# and one command to parse instead of one per task).
# KEYS: inbox.  ARGV: max queue length, task json...  All or nothing when the queue would overflow.
DISPATCH_MANY = """
local n = #ARGV - 1
if redis.call('XLEN', KEYS[1]) + n > tonumber(ARGV[1]) then
  return redis.error_reply('QUEUEFULL inbox ' .. KEYS[1] .. ' holds ' .. ARGV[1] .. ' tasks')
end
for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 't', ARGV[i]) end
return n
"""

# KEYS: inbox, results stream, then per item: result key, dedupe key.
# ARGV: group, ttl seconds, results maxlen, then per item: entry id, task id, result json.
# Returns one 1/0 per item, as COMPLETE does.
COMPLETE_MANY = """
local group, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3]
local out = {}
local n = (#KEYS - 2) / 2
for i = 1, n do
  local rkey, dkey = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local id, tid, res = ARGV[1 + 3 * i], ARGV[2 + 3 * i], ARGV[3 + 3 * i]
  local fresh = redis.call('SET', dkey, '1', 'NX', 'EX', ttl)
  redis.call('XACK', KEYS[1], group, id)
  redis.call('XDEL', KEYS[1], id)
  if fresh then
    redis.call('SET', rkey, res, 'EX', ttl)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'i', tid, 'r', res)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: inbox, cancelled set.  ARGV: group, member, orchestration ref, uid ('' = any), ttl seconds,
# cursor (an entry id, '' on the first call), max entries to scan.
# Marks the orchestration cancelled for this agent (the consumer completes delivered tasks of it without
# running them) and deletes its undelivered inbox entries: those after the group's last-delivered id (all of
# them when no group exists yet). Entries already delivered stay: their consumer settles them. Scans at most
# ``max entries`` per call so a long inbox never blocks Redis for long; returns {removed, next cursor or ''}.
CANCEL = """
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local function parse(id)
  local _, _, ms, seq = string.find(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function after(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am > bm or (am == bm and as > bs)
end
local from = '0-0'
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, g in ipairs(groups) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    if info['name'] == ARGV[1] then from = info['last-delivered-id'] end
  end
end
if ARGV[6] ~= '' and after(ARGV[6], from) then from = ARGV[6] end
local budget = tonumber(ARGV[7])
local rows = redis.call('XRANGE', KEYS[1], '(' .. from, '+', 'COUNT', budget)
local removed = 0
for _, row in ipairs(rows) do
  local f = row[2]
  for k = 1, #f, 2 do
    if f[k] == 't' then
      local good, task = pcall(cjson.decode, f[k + 1])
      if good and type(task) == 'table' and task['orchestration'] == ARGV[3] then
        local meta = task['meta']
        if ARGV[4] == '' or (type(meta) == 'table' and meta['uid'] == ARGV[4]) then
          redis.call('XDEL', KEYS[1], row[1])
          removed = removed + 1
        end
      end
    end
  end
end
local cursor = ''
if #rows >= budget then cursor = rows[#rows][1] end
return {removed, cursor}
"""
