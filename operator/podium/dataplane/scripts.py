"""The bus as one Redis 7 function library (``podium``), called by name with FCALL. Each function touches the keys
of one agent (one hash tag), all passed in KEYS, and checks that they are that agent's keys.

Why functions and not EVAL: an agent's Redis user can then be granted exactly the functions it needs
(``+fcall|podium_complete``) and no Lua of its own (no EVAL, SCRIPT or FUNCTION), so it can neither stall Redis
with a loop nor write past ``maxmemory`` with ``allow-oom``. Redis checks the caller's ACL inside a function too,
so a function holds no more rights than its caller: what makes a result trustworthy is the *seal* below, not the
ACL. The library holds a secret (``SEAL``, put in when the operator loads it; only users allowed ``FUNCTION
LIST`` can read it, never an agent) and every result it records carries ``seal(task id, result)``; producers
accept only results whose seal verifies (:mod:`podium.dataplane.library`), so a result written by hand, without
the completion function, counts for nothing. The result key is also the dedupe marker of its task's attempt (a
completion finding this attempt's sealed result there records nothing), so a forged value there cannot stop a real
completion from being recorded.

Delivery counts (the consumer group's per-entry counter) count hand-outs to a backend, not claims: recovering an
entry (``podium_recover``) claims it with JUSTID, which leaves the counter alone, and ``podium_handout`` sets it
when the entry is actually handed out. So a replica that dies holding entries it never started does not bring
them closer to the dead letters. Time comes from Redis (``TIME``) so leases do not depend on the replicas' clocks.
Inbox entries carry the task JSON in field ``t`` and its id and attempt in ``i`` and ``a``; an entry is deleted
when it is acknowledged, so the inbox length is the agent's backlog (undelivered + in flight).

Functions declare flags, so Redis refuses them whole when it is out of memory (no half-done writes), except
``podium_heartbeat`` (``allow-oom``: one small field per replica; liveness must not lapse because Redis refuses
writes) and the read-only ones (``no-writes``).
"""

from __future__ import annotations

# Placeholders filled in by podium.dataplane.library.library_code: the seal secret (40 hex digits), the largest
# task or result the library stores (bytes), and the template's digest (its version).
LIBRARY_TEMPLATE = r"""#!lua name=podium
-- Podium's message bus (podium.dataplane.scripts). Version __VERSION__.
local SEAL = '__SEAL__'
local MAX_BYTES = __MAX_BYTES__
local VERSION = '__VERSION__'
local GROUP = 'workers'
local RELEASED = ':released'  -- pseudo-consumer holding handed-back entries; ':' is never in a replica name
local DLQ_RAW = 65536         -- bytes of a dead letter's task kept in the dead-letter stream
local MAX_REPLICAS = 1000     -- heartbeat fields per agent
local SEALED = 40             -- hex digits of a seal, ahead of the JSON in a result key

local function fail(code, message)
  error({err = code .. ' ' .. message})
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function seal(text)
  return redis.sha1hex(SEAL .. redis.sha1hex(SEAL .. text))
end

-- The agent prefix ('podium:{ns/agent/name}:') of an agent key that ends in suffix.
local function prefix_of(key, suffix)
  local tail = '}:' .. suffix
  if type(key) ~= 'string' or string.sub(key, 1, 8) ~= 'podium:{' or #key <= 8 + #tail
      or string.sub(key, -#tail) ~= tail or not string.find(key, '/agent/', 1, true) then
    fail('PODIUMKEY', tostring(key) .. ' is not an agent ' .. suffix .. ' key')
  end
  return string.sub(key, 1, #key - #suffix)
end

local function expect_key(key, want)
  if key ~= want then fail('PODIUMKEY', 'expected key ' .. want .. ', got ' .. tostring(key)) end
end

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- The fields of an inbox entry, or nil when it is gone.
local function entry(inbox, id)
  local rows = redis.call('XRANGE', inbox, id, id)
  if #rows == 0 then return nil end
  return rows[1][2]
end

-- A result's seal: it binds the task id (library.result_message on the producers' side).
local function result_seal(tid, res)
  return seal(tid .. '\n' .. res)
end

-- Whether a result key's value is a result of this task id + attempt that the library recorded: its seal verifies
-- (it binds the task id) and the result says this attempt. Only read when a key is already there, so off the hot path.
local function recorded(value, tid, attempt)
  if not value or #value <= SEALED then return false end
  local res = string.sub(value, SEALED + 1)
  if string.sub(value, 1, SEALED) ~= result_seal(tid, res) then return false end
  local ok, result = pcall(cjson.decode, res)
  return ok and type(result) == 'table' and tostring(result['attempt']) == tostring(attempt)
end

-- Record a result once per task id + attempt: 1 when recorded, 0 when the result key already holds one of this
-- attempt. The result key is its own dedupe marker: it holds the latest result recorded for the task, sealed, and a
-- value the library did not seal counts for nothing.
local function record(results, rkey, tid, attempt, res, ttl, maxlen)
  local s = result_seal(tid, res)
  local value = s .. res
  local before = redis.call('SET', rkey, value, 'NX', 'EX', ttl, 'GET')  -- one call when the task has no result yet
  if before then
    if recorded(before, tid, attempt) then return 0 end
    redis.call('SET', rkey, value, 'EX', ttl)  -- another attempt's result, or one not sealed here
  end
  redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', 'i', tid, 'r', res, 's', s)
  return 1
end

local function live_replicas(hb, now, prune)
  local alive, out = {}, {}
  local rows = redis.call('HGETALL', hb)
  for i = 1, #rows, 2 do
    local _, _, seen, lease = string.find(rows[i + 1], '^%S+ %S+ (%d+) (%d+)')
    if seen and tonumber(seen) + tonumber(lease) >= now then
      alive[rows[i]] = true
      out[#out + 1] = rows[i]
      out[#out + 1] = rows[i + 1]
    elseif prune then
      redis.call('HDEL', hb, rows[i])
    end
  end
  return alive, out
end

-- KEYS: inbox.  ARGV: max queue length, then per task: id, attempt, task json.
-- All or nothing; creates the inbox's consumer group (from id 0) with the inbox.
local function dispatch(keys, args)
  local inbox = keys[1]
  prefix_of(inbox, 'inbox')
  local n = (#args - 1) / 3
  if n < 1 or n ~= math.floor(n) then fail('PODIUMARGS', 'dispatch takes a queue limit and 3 args per task') end
  for i = 1, n do
    local size = #args[3 * i + 1]
    if size > MAX_BYTES then
      return redis.error_reply('PAYLOAD task ' .. args[3 * i - 1] .. ' is ' .. size .. ' bytes, over the limit of '
        .. MAX_BYTES .. ' bytes this Redis was set up with')
    end
  end
  if redis.call('EXISTS', inbox) == 0 then redis.call('XGROUP', 'CREATE', inbox, GROUP, '0', 'MKSTREAM') end
  if redis.call('XLEN', inbox) + n > tonumber(args[1]) then
    return redis.error_reply('QUEUEFULL inbox ' .. inbox .. ' holds ' .. args[1] .. ' tasks')
  end
  for i = 1, n do
    redis.call('XADD', inbox, '*', 't', args[3 * i + 1], 'i', args[3 * i - 1], 'a', args[3 * i])
  end
  return n
end

-- KEYS: inbox, results, then per item: result key (replicas of versions before 2026-12 also pass a done key after
-- each, unused: a rolling upgrade finishes the tasks they hold).
-- ARGV: ttl seconds, results maxlen, then per item: entry id, task id, attempt, result json.
-- Per item: 1 recorded; 0 already recorded (the result key holds this attempt's); -1 not pending, nothing recorded
-- (the entry was never delivered, or was settled without a result: purged, dead-lettered without a task id); -2 the
-- result is over MAX_BYTES, nothing done. The seal binds the task id: a result key that does not match it holds a
-- value that verifies for no task, so the keys need no check here (this is the hot path).
local function complete(keys, args)
  local inbox, results = keys[1], keys[2]
  local p = prefix_of(inbox, 'inbox')
  expect_key(results, p .. 'results')
  local n = (#args - 2) / 4
  local per = 1
  if n > 0 then per = (#keys - 2) / n end
  if n ~= math.floor(n) or (per ~= 1 and per ~= 2) then
    fail('PODIUMARGS', 'complete takes 2 args, then a key and 4 args per item')
  end
  local ttl, maxlen = args[1], args[2]
  local out, acked = {}, {}
  for i = 1, n do
    local rkey = keys[3 + per * (i - 1)]
    local id, tid, attempt, res = args[4 * i - 1], args[4 * i], args[4 * i + 1], args[4 * i + 2]
    if #res > MAX_BYTES then
      out[i] = -2
    elseif redis.call('XACK', inbox, GROUP, id) == 1 then
      acked[#acked + 1] = id
      out[i] = record(results, rkey, tid, attempt, res, ttl, maxlen)
    elseif recorded(redis.call('GET', rkey), tid, attempt) then
      out[i] = 0
    else
      out[i] = -1
    end
  end
  -- The acknowledged entries leave the inbox in one XDEL per 500 (the inbox length stays the backlog).
  for first = 1, #acked, 500 do
    redis.call('XDEL', inbox, unpack(acked, first, math.min(first + 499, #acked)))
  end
  return out
end

-- KEYS: inbox, dlq, results, then when the task is known: its result key (and, from replicas of versions before
-- 2026-12, a done key, unused).
-- ARGV: entry id, reason, deliveries, dlq maxlen, ttl, results maxlen, then when the task is known: task id,
-- attempt, error result json. Moves the entry to the dead letters (its task field, at most DLQ_RAW bytes of it)
-- and records the error result, so the producer learns at once. Returns 1, or 0 when the entry was not pending.
local function dead_letter(keys, args)
  local inbox, dlq, results = keys[1], keys[2], keys[3]
  local p = prefix_of(inbox, 'inbox')
  expect_key(dlq, p .. 'dlq')
  expect_key(results, p .. 'results')
  local id = args[1]
  local known = #keys >= 4 and #args == 9
  local fields = entry(inbox, id)
  if redis.call('XACK', inbox, GROUP, id) == 0 then return 0 end
  redis.call('XDEL', inbox, id)
  local raw = (fields and field(fields, 't')) or ''
  local size = #raw
  if size > DLQ_RAW then raw = string.sub(raw, 1, DLQ_RAW) end
  redis.call('XADD', dlq, 'MAXLEN', '~', args[4], '*', 'entry', id, 'reason', args[2], 'raw', raw,
    'size', tostring(size), 'deliveries', args[3], 'at', tostring(now_ms()))
  if known then
    local tid, attempt, res = args[7], args[8], args[9]
    local holds = fields and field(fields, 'i')
    if #res <= MAX_BYTES and not (holds and holds ~= tid) then
      record(results, keys[4], tid, attempt, res, args[5], args[6])
    end
  end
  return 1
end

-- KEYS: heartbeats.  ARGV: replica, load, in_flight, lease ms, and optionally why the replica takes no work (its
-- backend unavailable), kept after the numbers.  Returns Redis's time in ms.
local function heartbeat(keys, args)
  local hb = keys[1]
  prefix_of(hb, 'hb')
  local replica, load, inflight, lease = args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  if not replica or #replica == 0 or #replica > 253 or not load or not inflight or not lease or lease < 1 then
    fail('PODIUMARGS', 'heartbeat takes a replica name (1-253 bytes), load, in_flight and a lease in ms')
  end
  if redis.call('HEXISTS', hb, replica) == 0 and redis.call('HLEN', hb) >= MAX_REPLICAS then
    fail('PODIUMARGS', 'heartbeat: ' .. MAX_REPLICAS .. ' replicas already registered')
  end
  local now = now_ms()
  local value = string.format('%.4f %d %d %d', load, inflight, now, lease)
  local problem = args[5]
  if problem and #problem > 0 then value = value .. ' ' .. string.sub(problem, 1, 400) end
  redis.call('HSET', hb, replica, value)
  local keep = math.floor(lease) * 3
  if redis.call('PTTL', hb) < keep then redis.call('PEXPIRE', hb, keep) end
  return now
end

-- KEYS: heartbeats.  Returns {now ms, replica, value, ...} of the replicas whose lease holds.
local function replicas(keys, args)
  prefix_of(keys[1], 'hb')
  local now = now_ms()
  local _, out = live_replicas(keys[1], now, false)
  table.insert(out, 1, tostring(now))
  return out
end

-- KEYS: inbox, heartbeats.
-- ARGV: me, mode, min idle ms, budget, suspect budget, max deliveries, isolate after, then (mode 'own') ids to
-- skip.
-- Makes entries ``me``'s without handing them out and returns {id, fields, deliveries} for each:
--   own:      entries pending on me for at least min idle (except the skipped ones: those me is running);
--   dead:     entries of consumers whose heartbeat lapsed (or who never sent one) and that Redis saw idle for at
--             least min idle, and the RELEASED pseudo-consumer's;
--   released: only RELEASED's.
-- At most budget entries; among them at most suspect budget suspects: entries handed out ``isolate after`` times or
-- more and not yet max deliveries (each runs alone, so a replica takes one at a time, the rest stay for others).
-- Claims use JUSTID: delivery counts do not change here.
local function recover(keys, args)
  local inbox, hb = keys[1], keys[2]
  local p = prefix_of(inbox, 'inbox')
  expect_key(hb, p .. 'hb')
  local me, mode = args[1], args[2]
  local minidle, budget, suspects = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  local maxd, isolate = tonumber(args[6]), tonumber(args[7])
  local out = {}
  local function take(id, n)
    local fields = entry(inbox, id)
    if fields then
      out[#out + 1] = {id, fields, n}
    else
      redis.call('XACK', inbox, GROUP, id)  -- deleted while pending: nothing left to run
    end
  end
  if mode == 'own' then
    local skip, skipped = {}, 0
    for i = 8, #args do
      skip[args[i]] = true
      skipped = skipped + 1
    end
    local ok, rows = pcall(redis.call, 'XPENDING', inbox, GROUP, 'IDLE', minidle, '-', '+', budget + skipped, me)
    if not ok then return out end
    for _, e in ipairs(rows) do
      if budget > 0 and not skip[e[1]] then
        take(e[1], tonumber(e[4]))
        budget = budget - 1
      end
    end
    return out
  end
  local alive = {}
  if mode == 'dead' then alive = live_replicas(hb, now_ms(), true) end
  alive[me] = true
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', inbox, GROUP)
  if not ok then return out end
  for _, c in ipairs(consumers) do
    local info = {}
    for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
    local name, pending, idle = info['name'], tonumber(info['pending']), tonumber(info['idle'])
    local gone = name == RELEASED or (mode == 'dead' and not alive[name] and idle >= minidle)
    if gone and pending > 0 and budget > 0 then
      local rows = redis.call('XPENDING', inbox, GROUP, '-', '+', math.min(pending, 1000), name)
      for _, e in ipairs(rows) do
        local id, n = e[1], tonumber(e[4])
        local suspect = n >= isolate and n < maxd
        if budget > 0 and (suspects > 0 or not suspect) then
          if #redis.call('XCLAIM', inbox, GROUP, me, 0, id, 'JUSTID') > 0 then
            take(id, n)
            budget = budget - 1
            if suspect then suspects = suspects - 1 end
          end
        end
      end
    end
  end
  return out
end

-- KEYS: inbox.  ARGV: me, then per entry: id, deliveries (this hand-out included).
-- Makes each entry me's and sets its delivery count; returns the ids that were still pending.
local function handout(keys, args)
  prefix_of(keys[1], 'inbox')
  local me, out = args[1], {}
  for i = 2, #args - 1, 2 do
    local got = redis.call('XCLAIM', keys[1], GROUP, me, 0, args[i], 'RETRYCOUNT', args[i + 1], 'JUSTID')
    if #got > 0 then out[#out + 1] = args[i] end
  end
  return out
end

-- KEYS: inbox.  ARGV: me, started ('1' or '0'), entry ids.
-- Hands entries me holds to the RELEASED pseudo-consumer, from which any replica's next recovery takes them.
-- An unstarted entry gets its hand-out back (count - 1). Returns how many moved.
local function release(keys, args)
  local inbox = keys[1]
  prefix_of(inbox, 'inbox')
  local me, started, moved = args[1], args[2] == '1', 0
  for i = 3, #args do
    local p = redis.call('XPENDING', inbox, GROUP, args[i], args[i], 1, me)
    if #p > 0 then
      local n = tonumber(p[1][4])
      if not started and n > 0 then n = n - 1 end
      redis.call('XCLAIM', inbox, GROUP, RELEASED, 0, args[i], 'RETRYCOUNT', n, 'JUSTID')
      moved = moved + 1
    end
  end
  return moved
end

-- KEYS: heartbeats.  ARGV: me.  A clean exit: the replica is no longer alive; what it holds is reclaimed.
local function leave(keys, args)
  prefix_of(keys[1], 'hb')
  return redis.call('HDEL', keys[1], args[1])
end

-- KEYS: inbox, heartbeats.  ARGV: min idle ms.
-- Deletes consumers that hold nothing, have no live heartbeat and were idle for min idle (the operator's
-- housekeeping: agents may not delete consumers, which could orphan a sibling's work). Returns how many.
local function prune(keys, args)
  local inbox, hb = keys[1], keys[2]
  local p = prefix_of(inbox, 'inbox')
  expect_key(hb, p .. 'hb')
  local alive = live_replicas(hb, now_ms(), true)
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', inbox, GROUP)
  if not ok then return 0 end
  local removed = 0
  for _, c in ipairs(consumers) do
    local info = {}
    for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
    if tonumber(info['pending']) == 0 and not alive[info['name']] and tonumber(info['idle']) >= tonumber(args[1]) then
      redis.call('XGROUP', 'DELCONSUMER', inbox, GROUP, info['name'])
      removed = removed + 1
    end
  end
  return removed
end

local function parse_id(id)
  local _, _, ms, seq = string.find(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function after(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am > bm or (am == bm and as > bs)
end

-- KEYS: inbox, cancelled set.  ARGV: member, orchestration ref, uid ('' = any), ttl seconds, cursor (an entry id,
-- '' on the first call), max entries to scan, and optionally a task id.
-- Marks the orchestration cancelled for this agent (its consumers complete delivered tasks of it without running
-- them) and deletes its undelivered inbox entries: those after the group's last-delivered id (all of them when no
-- group exists yet). Scans at most ``max entries`` per call so a long inbox never blocks Redis for long; returns
-- {removed, next cursor or ''}. With a task id, only that task is withdrawn: its undelivered entry is deleted, or,
-- when the scan ends without finding it (delivered already), the member marks it for its consumers.
local function cancel(keys, args)
  local inbox, set = keys[1], keys[2]
  local p = prefix_of(inbox, 'inbox')
  expect_key(set, p .. 'cancelled')
  local only = args[7]
  if not only then
    redis.call('SADD', set, args[1])
    redis.call('EXPIRE', set, args[4])
  end
  local from = '0-0'
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', inbox)
  if ok then
    for _, g in ipairs(groups) do
      local info = {}
      for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
      if info['name'] == GROUP then from = info['last-delivered-id'] end
    end
  end
  if args[5] ~= '' and after(args[5], from) then from = args[5] end
  local budget = tonumber(args[6])
  local rows = redis.call('XRANGE', inbox, '(' .. from, '+', 'COUNT', budget)
  local removed = 0
  for _, row in ipairs(rows) do
    local raw = not only and field(row[2], 't')
    if only and field(row[2], 'i') == only then
      redis.call('XDEL', inbox, row[1])
      return {1, ''}
    elseif raw then
      local good, task = pcall(cjson.decode, raw)
      if good and type(task) == 'table' and task['orchestration'] == args[2] then
        local meta = task['meta']
        if args[3] == '' or (type(meta) == 'table' and meta['uid'] == args[3]) then
          redis.call('XDEL', inbox, row[1])
          removed = removed + 1
        end
      end
    end
  end
  local cursor = ''
  if #rows >= budget then cursor = rows[#rows][1] end
  if only and cursor == '' then
    redis.call('SADD', set, args[1])
    redis.call('EXPIRE', set, args[4])
  end
  return {removed, cursor}
end

-- No keys.  Returns {version, max bytes}: consumers check the library they talk to.
local function info(keys, args)
  return {VERSION, MAX_BYTES}
end

redis.register_function('podium_dispatch', dispatch)
redis.register_function('podium_complete', complete)
redis.register_function('podium_dead_letter', dead_letter)
redis.register_function{function_name = 'podium_heartbeat', callback = heartbeat, flags = {'allow-oom'}}
redis.register_function{function_name = 'podium_replicas', callback = replicas, flags = {'no-writes'}}
redis.register_function('podium_recover', recover)
redis.register_function('podium_handout', handout)
redis.register_function('podium_release', release)
redis.register_function('podium_leave', leave)
redis.register_function('podium_prune', prune)
redis.register_function('podium_cancel', cancel)
redis.register_function{function_name = 'podium_info', callback = info, flags = {'no-writes'}}
"""

# What an agent replica calls (its Redis user may call these and no other function); the operator calls the rest.
AGENT_FUNCTIONS: tuple[str, ...] = (
    "podium_complete",
    "podium_dead_letter",
    "podium_heartbeat",
    "podium_recover",
    "podium_handout",
    "podium_release",
    "podium_leave",
)
AGENT_READ_ONLY_FUNCTIONS: tuple[str, ...] = ("podium_info",)  # called with FCALL_RO
