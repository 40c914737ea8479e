-- Larder: newest event wins, atomically, for one entity hash and one or more feature views
-- (views that share an entity key share its hash: materializing two views of one source, or a
-- push source feeding two views, writes both in one call).
--
-- KEYS[1]   the entity hash
-- ARGV[1]   EXPIRE seconds for the whole hash after a write, 0 for none
-- ARGV[2..] per view: its timestamp field (_ts:<view>), the row's event time as a serialized
--           google.protobuf.Timestamp (what is stored), the number of features n, then n
--           pairs of feature field and value
--
-- Returns a number whose bit k (from the lowest) is set when the k-th view's row was written,
-- clear when the stored event is as new or newer; at most 50 views per call, so the number
-- stays exact (Lua numbers are doubles). The rule is Feast's: write only if the event time is
-- strictly later than the stored one; a stored time of 0 (the epoch), a missing one or one
-- that does not parse counts as nothing stored. Seconds and nanoseconds are compared as a
-- pair: Lua numbers are doubles, and seconds * 1e9 + nanos would lose precision for any time
-- after 1970-04.

local key = KEYS[1]

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

-- Inline rather than in helper functions, and the answer a number rather than a table:
-- creating closures and tables on every call cost more than the HGET and HSET (about 2 us of
-- 6, measured with redis-benchmark and INFO commandstats).
local written, bit = 0, 1
local last = #ARGV
local i = 2
while i <= last do
  local ts_field, ts = ARGV[i], ARGV[i + 1]
  local first = i + 3
  local upto = i + 2 + 2 * tonumber(ARGV[i + 2])
  local write = true
  local stored = redis.call('HGET', key, ts_field)
  if stored then
    if not timestamp then
      timestamp = define_timestamp()
    end
    local secs, nanos = timestamp(stored)
    -- Unreadable or the epoch: nothing stored (Feast's rule for the epoch). The same bytes
    -- (a replay) are the same time, not later: no second parse.
    if secs and (secs ~= 0 or nanos ~= 0) then
      if stored == ts then
        write = false
      else
        local new_secs, new_nanos = timestamp(ts)
        write = new_secs > secs or (new_secs == secs and new_nanos > nanos)
      end
    end
  end
  if write then
    -- unpack() puts every argument on Lua's C stack (8000 slots), so a very wide view is
    -- written in slices of 998 arguments (499 fields); the first slice carries the timestamp.
    local slice = first + 997
    if slice > upto then
      slice = upto
    end
    redis.call('HSET', key, ts_field, ts, unpack(ARGV, first, slice))
    first = slice + 1
    while first <= upto do
      slice = first + 997
      if slice > upto then
        slice = upto
      end
      redis.call('HSET', key, unpack(ARGV, first, slice))
      first = slice + 1
    end
    written = written + bit
  end
  bit = bit * 2
  i = upto + 1
end

if written ~= 0 and ARGV[1] ~= '0' then
  redis.call('EXPIRE', key, ARGV[1])
end
return written
