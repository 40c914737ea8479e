-- Larder: newest event wins, atomically, for one or more entity hashes and, per hash, one or
-- more feature views (views that share an entity key share its hash: materializing two views
-- of one source, or a push source feeding two views, writes both in one call). Several hashes
-- share a call on a standalone server: the script's fixed cost (argument tables, the call
-- itself) is then paid once per call, not per key. A cluster calls it one hash at a time (all
-- keys of a script must live in one slot).
--
-- KEYS      the entity hashes
-- ARGV[1]   EXPIRE seconds for a hash after a write to it, 0 for none
-- ARGV[2]   the number of views V the call names (at most 255)
-- then      per view: its timestamp field (_ts:<view>), its number of features n, and its n
--           feature fields. Each view's field names travel once per call, not once per key:
--           Redis parses and Lua interns every argument, and for the usual key (two views of
--           seven features) that halves the arguments.
-- then      per hash, in the order of KEYS: its view set, a string with one byte per view
--           written to the hash, the view's number among the V (1-based); then per view of the
--           set, the row's event time as a serialized google.protobuf.Timestamp (what is
--           stored) and the view's n feature values.
--
-- Returns one number per hash whose bit k (from the lowest) is set when the row of the k-th
-- view of its set was written, clear when the stored event is as new or newer; at most 50
-- views per hash, so the number stays exact (Lua numbers are doubles). The rule is Feast's:
-- write only if the event time is strictly later than the stored one; a stored time of 0 (the
-- epoch), a missing one or one that does not parse counts as nothing stored. Seconds and
-- nanoseconds are compared as a pair: Lua numbers are doubles, and seconds * 1e9 + nanos would
-- lose precision for any time after 1970-04.

-- Defined on first use: a closure is allocated each time its definition runs, and a first
-- write to a key (the common case when materializing) never needs them.
local timestamp

local function define_timestamp()
  -- A protobuf varint at byte i of s, as a Lua number: returns the value and the next index,
  -- or nil when the bytes end early or the varint runs past ten bytes. A ten-byte varint is a
  -- negative int64/int32 in two's complement; its magnitude is exact only when rebuilt from
  -- the complemented 7-bit groups, so both sums are kept as the bytes come.
  local function varint(s, i)
    local v, comp, scale, len = 0, 0, 1, 0
    local n = #s
    while i <= n and len < 10 do
      local b = string.byte(s, i)
      i = i + 1
      len = len + 1
      local g = b % 128
      if len < 10 then
        v = v + g * scale
        comp = comp + (127 - g) * scale
        scale = scale * 128
      end
      if b < 128 then
        if len == 10 then
          return -comp - 1, i
        end
        return v, i
      end
    end
    return nil
  end

  -- google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2 } as seconds and nanos
  -- normalized to 0..999999999 (as protobuf libraries do). Unknown fields are skipped;
  -- anything malformed (truncated, a varint past ten bytes, a known field with the wrong wire
  -- type, an unknown wire type) gives nil, as a failing protobuf decoder would.
  return function(s)
    local n = #s
    -- Fast path: the encoding every protobuf library writes for a time from 1978 to 3058, tag
    -- 0x08 and five varint bytes of seconds, then nothing (nanos 0) or tag 0x10 and one to
    -- five bytes of nanos, read with two string.byte calls instead of a call per byte (about
    -- 1 us less per update). Anything else falls through to the general decoder below.
    if n == 6 or (n >= 8 and n <= 12) then
      local t, a, b, c, d, e, u, n1, n2, n3, n4, n5 = string.byte(s, 1, 12)
      if t == 8 and a > 127 and b > 127 and c > 127 and d > 127 and e < 128 and (n == 6 or u == 16) then
        local secs = a - 128 + (b - 128) * 128 + (c - 128) * 16384 + (d - 128) * 2097152 + e * 268435456
        local nanos, last = 0, 6
        if n == 6 then
          -- No nanos field: nanos 0.
        elseif n1 < 128 then
          nanos, last = n1, 8
        elseif n2 and n2 < 128 then
          nanos, last = n1 - 128 + n2 * 128, 9
        elseif n3 and n3 < 128 then
          nanos, last = n1 - 128 + (n2 - 128) * 128 + n3 * 16384, 10
        elseif n4 and n4 < 128 then
          nanos, last = n1 - 128 + (n2 - 128) * 128 + (n3 - 128) * 16384 + n4 * 2097152, 11
        elseif n5 and n5 < 128 then
          nanos, last = n1 - 128 + (n2 - 128) * 128 + (n3 - 128) * 16384 + (n4 - 128) * 2097152 + n5 * 268435456, 12
        else
          last = 0
        end
        if last == n and nanos < 1000000000 then
          return secs, nanos
        end
      end
    end
    local secs, nanos, i = 0, 0, 1
    while i <= n do
      local tag, v
      tag, i = varint(s, i)
      if not tag then
        return nil
      end
      local field, wire = math.floor(tag / 8), tag % 8
      if wire == 0 then
        v, i = varint(s, i)
        if not v then
          return nil
        elseif field == 1 then
          secs = v
        elseif field == 2 then
          nanos = v
        end
      elseif field == 1 or field == 2 then
        return nil
      elseif wire == 1 then
        i = i + 8
      elseif wire == 5 then
        i = i + 4
      elseif wire == 2 then
        v, i = varint(s, i)
        if not v or v < 0 then
          return nil
        end
        i = i + v
      else
        return nil
      end
      if i > n + 1 then
        return nil
      end
    end
    if nanos < 0 or nanos >= 1000000000 then
      secs = secs + math.floor(nanos / 1000000000)
      nanos = nanos % 1000000000
    end
    return secs, nanos
  end
end

local byte, call, argv = string.byte, redis.call, ARGV

-- HSET of t[1..upto], field/value pairs. unpack() puts every value on Lua's C stack (8000
-- slots), so a very wide row is written in slices of 998 values (499 fields).
local function hset(key, t, upto)
  local first = 1
  while first <= upto do
    local slice = first + 997
    if slice > upto then
      slice = upto
    end
    call('HSET', key, unpack(t, first, slice))
    first = slice + 1
  end
end

local ttl = argv[1]
local ts_field, width, names = {}, {}, {}
local i = 3
for v = 1, tonumber(argv[2]) do
  ts_field[v] = argv[i]
  width[v] = tonumber(argv[i + 1])
  names[v] = i + 2
  i = i + 2 + width[v]
end

-- Per view set, the HSET arguments of a hash that wins in every view of it: the field slots
-- filled once per call, the value slots refilled per hash. One table per set and call, not
-- per hash: creating tables and closures per hash cost more than the HGET and HSET (measured
-- with redis-benchmark and INFO commandstats).
local layouts = {}
local function layout(set)
  local t, pos = {}, 1
  for j = 1, #set do
    local v = byte(set, j)
    t[pos] = ts_field[v]
    pos = pos + 2
    for f = names[v], names[v] + width[v] - 1 do
      t[pos] = argv[f]
      pos = pos + 2
    end
  end
  layouts[set] = t
  return t
end
-- The HSET arguments of a hash that wins in some of its views only (rare).
local partial

-- Whether to ask EXISTS before the HGETs of a hash of two or more views. A hash that does not
-- exist stores no time, so one EXISTS answers for all its views: for a first load (the hashes
-- are new) that is one call per hash instead of one per view, 3% of Redis's instructions per
-- new hash of two views (bench/script_cost.py). For a hash that exists it is one call more, so
-- probing stops at the first hash found and resumes only after a hash that stored none of the
-- times asked for: a call of updates pays one EXISTS, not one per hash. A call of one hash (a
-- cluster's always, a standalone server's rarely) does not probe: on a cluster updates would
-- pay an EXISTS per hash.
local probe = #KEYS > 1

-- The decision inline rather than in helper functions: closures and tables per hash cost more
-- than the calls they would save (as for the layouts above).
local written = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local set = argv[i]
  local views = #set
  local mask, bit, at = 0, 1, i + 1
  local absent = probe and views > 1 and call('EXISTS', key) == 0
  local found = false
  for j = 1, views do
    local v = byte(set, j)
    local ts = argv[at]
    local write = true
    local stored = not absent and call('HGET', key, ts_field[v])
    found = found or stored
    if stored == ts then
      -- A replay: the same time is not later, no parse needed. The one exception is the epoch
      -- (its bytes are empty), which counts as nothing stored (Feast's rule).
      write = ts == ''
    elseif stored then
      if not timestamp then
        timestamp = define_timestamp()
      end
      local secs, nanos = timestamp(stored)
      -- Unreadable or the epoch: nothing stored.
      if secs and (secs ~= 0 or nanos ~= 0) then
        local new_secs, new_nanos = timestamp(ts)
        write = new_secs > secs or (new_secs == secs and new_nanos > nanos)
      end
    end
    if write then
      mask = mask + bit
    end
    bit = bit * 2
    at = at + 1 + width[v]
  end
  probe = not found
  if mask == bit - 1 then
    -- Every view wins (the common case): the set's table with this hash's values, one HSET.
    local t = layouts[set] or layout(set)
    local pos = 2
    for a = i + 1, at - 1 do
      t[pos] = argv[a]
      pos = pos + 2
    end
    hset(key, t, pos - 2)
  elseif mask ~= 0 then
    partial = partial or {}
    local pos, from, b = 1, i + 1, 1
    for j = 1, views do
      local v = byte(set, j)
      if mask % (b * 2) >= b then
        partial[pos], partial[pos + 1] = ts_field[v], argv[from]
        pos = pos + 2
        for f = 0, width[v] - 1 do
          partial[pos], partial[pos + 1] = argv[names[v] + f], argv[from + 1 + f]
          pos = pos + 2
        end
      end
      b = b * 2
      from = from + 1 + width[v]
    end
    hset(key, partial, pos - 1)
  end
  if mask ~= 0 and ttl ~= '0' then
    call('EXPIRE', key, ttl)
  end
  written[k] = mask
  i = at
end
return written
