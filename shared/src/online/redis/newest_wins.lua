-- Larder: newest event wins, atomically, for one entity hash and one feature view.
--
-- KEYS[1]   the entity hash
-- ARGV[1]   the view's timestamp field, _ts:<view>
-- ARGV[2]   the row's event time as a serialized google.protobuf.Timestamp (what is stored)
-- ARGV[3]   EXPIRE seconds for the whole hash after a write, 0 for none
-- ARGV[4..] feature field, value, feature field, value, ...
--
-- Returns 1 when the row was written, 0 when the stored event is as new or newer.
-- The rule is Feast's: write only if the event time is strictly later than the stored one;
-- a stored time of 0 (the epoch), a missing one or one that does not parse counts as nothing
-- stored. Seconds and nanoseconds are compared as a pair: Lua numbers are doubles, and
-- seconds * 1e9 + nanos would lose precision for any time after 1970-04.

local key = KEYS[1]
local stored = redis.call('HGET', key, ARGV[1])
if stored then
  -- Defined here, not at the top: a closure is allocated each time its definition runs, and a
  -- first write to a key (the common case when materializing) never needs them.

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
  local function timestamp(s)
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

  local secs, nanos = timestamp(stored)
  -- Unreadable or the epoch: nothing stored (Feast's rule for the epoch).
  if secs and (secs ~= 0 or nanos ~= 0) then
    local new_secs, new_nanos = timestamp(ARGV[2])
    if new_secs < secs or (new_secs == secs and new_nanos <= nanos) then
      return 0
    end
  end
end

-- unpack() puts every argument on Lua's C stack (8000 slots), so a very wide view is written in
-- slices of 998 arguments (499 fields); the first slice carries the timestamp field.
local last = #ARGV
if last <= 1001 then
  redis.call('HSET', key, ARGV[1], ARGV[2], unpack(ARGV, 4, last))
else
  redis.call('HSET', key, ARGV[1], ARGV[2], unpack(ARGV, 4, 1001))
  local first = 1002
  while first <= last do
    local upto = first + 997
    if upto > last then
      upto = last
    end
    redis.call('HSET', key, unpack(ARGV, first, upto))
    first = upto + 1
  end
end

if ARGV[3] ~= '0' then
  redis.call('EXPIRE', key, ARGV[3])
end
return 1
