-- Larder: newest event wins, atomically, for one entity hash and one feature view.
--
-- KEYS[1]   the entity hash
-- ARGV[1]   the view's timestamp field, _ts:<view>
-- ARGV[2]   the row's event time as a serialized google.protobuf.Timestamp (what is stored)
-- ARGV[3]   the same time's seconds, ARGV[4] its nanoseconds (0..999999999), as decimal text
-- ARGV[5]   EXPIRE seconds for the whole hash after a write, 0 for none
-- ARGV[6..] feature field, value, feature field, value, ...
--
-- Returns 1 when the row was written, 0 when the stored event is as new or newer.
-- The rule is Feast's: write only if the event time is strictly later than the stored one;
-- a stored time of 0 (the epoch), a missing one or one that does not parse counts as nothing
-- stored. Seconds and nanoseconds are compared as a pair: Lua numbers are doubles, and
-- seconds * 1e9 + nanos would lose precision for any time after 1970-04.

-- A protobuf varint at byte i of s, as a Lua number: returns the value and the next index, or
-- nil when the bytes end early or the varint is longer than ten bytes. A ten-byte varint is a
-- negative int64/int32 in two's complement; its magnitude is rebuilt from the complemented
-- groups so small negative numbers stay exact.
local function varint(s, i)
  local groups = {}
  while true do
    if i > #s or #groups == 10 then
      return nil
    end
    local b = string.byte(s, i)
    i = i + 1
    groups[#groups + 1] = b % 128
    if b < 128 then
      break
    end
  end
  local value, scale = 0, 1
  if #groups == 10 then
    for k = 1, 9 do
      value = value + (127 - groups[k]) * scale
      scale = scale * 128
    end
    return -value - 1, i
  end
  for k = 1, #groups do
    value = value + groups[k] * scale
    scale = scale * 128
  end
  return value, i
end

-- google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2 }: returns seconds and
-- nanos normalized to 0..999999999 (as protobuf libraries do), or nil when malformed.
local function timestamp(s)
  local secs, nanos, i = 0, 0, 1
  while i <= #s do
    local tag
    tag, i = varint(s, i)
    if not tag then
      return nil
    end
    local field, wire = math.floor(tag / 8), tag % 8
    if wire == 0 then
      local v
      v, i = varint(s, i)
      if not v then
        return nil
      end
      if field == 1 then
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
      local len
      len, i = varint(s, i)
      if not len or len < 0 then
        return nil
      end
      i = i + len
    else
      return nil
    end
    if i > #s + 1 then
      return nil
    end
  end
  if nanos < 0 or nanos >= 1000000000 then
    secs = secs + math.floor(nanos / 1000000000)
    nanos = nanos % 1000000000
  end
  return secs, nanos
end

local key = KEYS[1]
local stored = redis.call('HGET', key, ARGV[1])
if stored then
  local secs, nanos = timestamp(stored)
  if secs and not (secs == 0 and nanos == 0) then
    local new_secs, new_nanos = tonumber(ARGV[3]), tonumber(ARGV[4])
    if new_secs < secs or (new_secs == secs and new_nanos <= nanos) then
      return 0
    end
  end
end

-- unpack() puts every argument on Lua's C stack (8000 slots), so a very wide view is written in
-- slices; the first slice carries the timestamp field.
local last = #ARGV
local first = 6
local slice = 998
local upto = math.min(first + slice - 1, last)
redis.call('HSET', key, ARGV[1], ARGV[2], unpack(ARGV, first, upto))
first = upto + 1
while first <= last do
  upto = math.min(first + slice - 1, last)
  redis.call('HSET', key, unpack(ARGV, first, upto))
  first = upto + 1
end

local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('EXPIRE', key, ttl)
end
return 1
