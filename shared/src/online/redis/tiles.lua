-- Larder: stream window aggregation tiles, exactly once per stream position. The rules are
-- those of shared/src/aggregate/tiles.rs (`apply`), which documents them; the merge formulas
-- and their order are TileState::merge's, so both store the same bits.
--
-- KEYS      tile keys (one entity and view each)
-- ARGV      per key, in the order of KEYS: allowed lateness (us), how long tiles are kept
--           behind the newest event (us), the field count over which old tiles are pruned,
--           the number of runs R; then per run: lane ('' for none), first and last position,
--           oldest and newest event time (us), the number of tiles T, then T pairs of tile
--           field and partial state (eight little-endian doubles).
--
-- Returns one string per key: a letter per run (a applied, d duplicate, l late), or 'R' when a
-- run is neither wholly one nor another; nothing of that key is applied then, and the caller
-- sends its events again one per run.

local call, argv = redis.call, ARGV
local spack, sunpack = struct.pack, struct.unpack
local FORMAT = '<dddddddd'

local function decode(s)
  if not s or #s ~= 64 then
    return nil
  end
  local n, sum, mean, m2, lo, hi, last, last_us = sunpack(FORMAT, s)
  return { n, sum, mean, m2, lo, hi, last, last_us }
end

-- TileState::merge: b into a (b the later for ties of `last`).
local function merge(a, b)
  if b[1] == 0 then
    return a
  end
  if not a or a[1] == 0 then
    return b
  end
  local n = a[1] + b[1]
  local d = b[3] - a[3]
  local mean = a[3] + d * b[1] / n
  local m2 = a[4] + b[4] + d * d * a[1] * b[1] / n
  local lo, hi = a[5], a[6]
  if b[5] < lo then
    lo = b[5]
  end
  if b[6] > hi then
    hi = b[6]
  end
  local last, last_us = a[7], a[8]
  if b[8] >= last_us then
    last, last_us = b[7], b[8]
  end
  return { n, a[2] + b[2], mean, m2, lo, hi, last, last_us }
end

local out = {}
local i = 1
-- Now (us), read once per call when a key is first kept alive.
local now_us
for k = 1, #KEYS do
  local key = KEYS[k]
  local lateness, keep, cap, nruns = tonumber(argv[i]), tonumber(argv[i + 1]), tonumber(argv[i + 2]), tonumber(argv[i + 3])
  i = i + 4
  local starts = {}
  -- The newest event time and each lane's mark, read in one call.
  local wanted, lane_at = { '\0max' }, {}
  for r = 1, nruns do
    starts[r] = i
    local lane = argv[i]
    if lane ~= '' and not lane_at[lane] then
      wanted[#wanted + 1] = '\0w|' .. lane
      lane_at[lane] = #wanted
    end
    i = i + 6 + 2 * tonumber(argv[i + 5])
  end
  local got = call('HMGET', key, unpack(wanted))

  local max = tonumber(got[1] or nil)
  local marks, changed_marks = {}, {}
  for lane, at in pairs(lane_at) do
    marks[lane] = got[at]
  end
  local status, redo, applied = {}, false, false
  for r = 1, nruns do
    local a = starts[r]
    local lane, first, last = argv[a], argv[a + 1], argv[a + 2]
    local lo, hi = tonumber(argv[a + 3]), tonumber(argv[a + 4])
    local w = false
    if lane ~= '' then
      w = marks[lane]
    end
    local s
    if w and first <= w then
      if last <= w then
        s = 'd'
      else
        redo = true
        break
      end
    elseif max and hi < max - lateness then
      s = 'l'
    elseif max and lo < max - lateness then
      redo = true
      break
    else
      s = 'a'
      applied = true
      if not max or hi > max then
        max = hi
      end
    end
    if lane ~= '' and s ~= 'd' then
      marks[lane] = last
      changed_marks[lane] = true
    end
    status[r] = s
  end

  if redo then
    out[k] = 'R'
  else
    local hset, pos = {}, 1
    if applied then
      -- The stored state of every tile the applied runs touch, read in one call, then the
      -- runs' states (`deltas`: argument positions, in run order) merged into them.
      local tiles, order, deltas = {}, {}, {}
      for r = 1, nruns do
        if status[r] == 'a' then
          local a = starts[r]
          local f = a + 6
          for _ = 1, tonumber(argv[a + 5]) do
            if tiles[argv[f]] == nil then
              tiles[argv[f]] = false
              order[#order + 1] = argv[f]
            end
            deltas[#deltas + 1] = f
            f = f + 2
          end
        end
      end
      if #order > 0 then
        local stored = call('HMGET', key, unpack(order))
        for j, field in ipairs(order) do
          tiles[field] = decode(stored[j]) or false
        end
      end
      for _, f in ipairs(deltas) do
        tiles[argv[f]] = merge(tiles[argv[f]], decode(argv[f + 1]))
      end
      for _, field in ipairs(order) do
        local t = tiles[field]
        hset[pos], hset[pos + 1] = field, spack(FORMAT, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])
        pos = pos + 2
      end
      -- Integer text, as Rust's i64 prints it (tostring would write 1.7e+15).
      hset[pos], hset[pos + 1] = '\0max', string.format('%d', max)
      pos = pos + 2
    end
    for lane in pairs(changed_marks) do
      hset[pos], hset[pos + 1] = '\0w|' .. lane, marks[lane]
      pos = pos + 2
    end
    if pos > 1 then
      call('HSET', key, unpack(hset, 1, pos - 1))
    end
    if applied then
      if call('HLEN', key) > cap then
        local cutoff = max - keep
        local old = {}
        for _, field in ipairs(call('HKEYS', key)) do
          if string.byte(field, 1) ~= 0 then
            local hop, index = string.match(field, '|(%-?%d+)|(%-?%d+)$')
            if hop and (tonumber(index) + 1) * tonumber(hop) <= cutoff then
              old[#old + 1] = field
            end
          end
        end
        if #old > 0 then
          call('HDEL', key, unpack(old))
        end
      end
      -- Kept `keep` past the newer of the newest event and now: a redelivery soon after a
      -- delivery is recognized however old its events are.
      if not now_us then
        local now = call('TIME')
        now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
      end
      local newest = now_us
      if max > newest then
        newest = max
      end
      local expire = math.floor((newest + keep) / 1000) + 1
      if call('PEXPIRETIME', key) < expire then
        call('PEXPIREAT', key, string.format('%d', expire))
      end
    end
    out[k] = table.concat(status)
  end
end
return out
