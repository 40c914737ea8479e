-- Larder: stream window aggregation tiles, exactly once per stream position. The rules are
-- those of shared/src/aggregate/tiles.rs (`apply`), which documents them; the merge formulas
-- and their order are TileState::merge's, so both store the same bits.
--
-- KEYS      tile keys (one entity and view each), then the entity hashes some of them also
--           write (Feast's hash of the same entity, in the same cluster slot)
-- ARGV      the number of tile keys N (the first N KEYS), the number of Feast layouts L; per
--           layout: its `_ts:<view>` field, its number of outputs O, then per output: its
--           feature field, its series' tile field prefix, the hop (us), tiles per window, '1'
--           sliding or '0' tumbling, the function's letter (c count, s sum, m mean, n min,
--           x max, l last, v var, d std, u count_distinct) and the type's letter (i Int64, j Int32, f Float32,
--           b Bool, d Float64).
--           Then per tile key, in the order of KEYS: allowed lateness (us), how long the key is
--           kept behind the newest event (us), the number of hops H and H pairs of hop (us) and
--           how long its tiles are kept behind the newest event (us; a hop not listed: as the
--           key), the field count over which old tiles are pruned, the number of `idem:` lane
--           marks kept, the number of runs R; then per run: lane ('' for none), first and last
--           position, oldest and newest event time (us), the number of tiles T, then T pairs of
--           tile field and partial state (eight little-endian doubles; for count_distinct 'E'
--           and 8-byte big-endian hashes, ascending, or 'H' and 4096 register bytes: see
--           shared/src/aggregate/distinct.rs). Then its layout number
--           (0: tiles only); with one: the KEYS index of its entity hash, EXPIRE seconds for it
--           (0 none), the time (us) of the newest plain row ('' none), its number of values P
--           and P pairs of feature field and value.
--
-- With a layout, after a write the entity hash gets the plain row when it is newer than the
-- one written before, every output's value over the window ending with the newest event (the
-- tiles ending with its tile when sliding, the window holding it when tumbling; an empty
-- string for a null) as a serialized feast.types.Value, and `_ts:<view>` = the latest such
-- window end (or the row's time), strictly later than the one written before. The rules are
-- tiles.rs `apply`'s.
--
-- Returns one string per key: a letter per run (a applied, d duplicate, l late), then '+' when
-- the plain row was written; or 'R' when a run is neither wholly one nor another; nothing of
-- that key is applied then, and the caller sends its events again one per run.

local call, argv = redis.call, ARGV
local spack, sunpack = struct.pack, struct.unpack
local FORMAT = '<dddddddd'

-- count_distinct (distinct.rs): at most CAP hashes exactly, else M registers.
local CAP, M = 512, 4096
local ALPHA = 0.7213 / (1 + 1.079 / M)
-- POW[r] = 2^-r, exact.
local POW = { [0] = 1 }
for r = 1, 64 do
  POW[r] = POW[r - 1] / 2
end

-- A stored state: moments { n, sum, mean, m2, min, max, last, last_us }; distinct values
-- { d = 'E', hi = {...}, lo = {...} } (each hash as two 32-bit halves, ascending) or
-- { d = 'H', r = {...} } (registers); nil when the bytes are none of these.
local function decode(s)
  if not s then
    return nil
  end
  if #s == 64 then
    local n, sum, mean, m2, lo, hi, last, last_us = sunpack(FORMAT, s)
    return { n, sum, mean, m2, lo, hi, last, last_us }
  end
  -- Checked as Distinct::decode checks (ascending, at most CAP; ranks at most 53).
  local tag = string.sub(s, 1, 1)
  if tag == 'E' and (#s - 1) % 8 == 0 and #s - 1 <= 8 * CAP then
    local his, los = {}, {}
    for p = 2, #s, 8 do
      local hi, lo = sunpack('>I4I4', s, p)
      local k = #his
      if k > 0 and (hi < his[k] or (hi == his[k] and lo <= los[k])) then
        return nil
      end
      his[k + 1], los[k + 1] = hi, lo
    end
    return { d = 'E', hi = his, lo = los }
  elseif tag == 'H' and #s == M + 1 then
    local r = { string.byte(s, 2, M + 1) }
    for k = 1, M do
      if r[k] > 53 then
        return nil
      end
    end
    return { d = 'H', r = r }
  end
  return nil
end

local function encode(t)
  if t.d == 'E' then
    local parts = { 'E' }
    for j = 1, #t.hi do
      parts[j + 1] = spack('>I4I4', t.hi[j], t.lo[j])
    end
    return table.concat(parts)
  elseif t.d == 'H' then
    return 'H' .. string.char(unpack(t.r))
  end
  return spack(FORMAT, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])
end

-- distinct.rs `add`: the register of a hash (its top 12 bits) keeps the largest rank (one more
-- than the leading zeros of the other 52 bits; 53 when they are all zero).
local function add(r, hi, lo)
  local j = math.floor(hi / 1048576) + 1
  local rest_hi = hi % 1048576
  local bits, x = 0, lo
  if rest_hi > 0 then
    bits, x = 32, rest_hi
  end
  while x >= 1 do
    x = math.floor(x / 2)
    bits = bits + 1
  end
  local rank = 53 - bits
  if rank > r[j] then
    r[j] = rank
  end
end

-- Distinct::merge, into new tables (the inputs may be other windows' tiles too).
local function merge_distinct(a, b)
  if not a then
    return b
  end
  if b.d == 'E' and #b.hi == 0 then
    return a
  end
  if a.d == 'E' and b.d == 'E' then
    local his, los = {}, {}
    local i, j, na, nb = 1, 1, #a.hi, #b.hi
    while i <= na or j <= nb do
      local take
      if i > na then
        take = 'b'
      elseif j > nb then
        take = 'a'
      elseif a.hi[i] < b.hi[j] or (a.hi[i] == b.hi[j] and a.lo[i] < b.lo[j]) then
        take = 'a'
      elseif a.hi[i] == b.hi[j] and a.lo[i] == b.lo[j] then
        take = '='
      else
        take = 'b'
      end
      if take == 'b' then
        his[#his + 1], los[#los + 1] = b.hi[j], b.lo[j]
        j = j + 1
      else
        his[#his + 1], los[#los + 1] = a.hi[i], a.lo[i]
        i = i + 1
        if take == '=' then
          j = j + 1
        end
      end
    end
    if #his <= CAP then
      return { d = 'E', hi = his, lo = los }
    end
    local r = {}
    for k = 1, M do
      r[k] = 0
    end
    for k = 1, #his do
      add(r, his[k], los[k])
    end
    return { d = 'H', r = r }
  end
  -- At least one sketch: the registers of both.
  local sk, other = a, b
  if a.d ~= 'H' then
    sk, other = b, a
  end
  local r = {}
  for k = 1, M do
    r[k] = sk.r[k]
  end
  if other.d == 'H' then
    for k = 1, M do
      if other.r[k] > r[k] then
        r[k] = other.r[k]
      end
    end
  else
    for k = 1, #other.hi do
      add(r, other.hi[k], other.lo[k])
    end
  end
  return { d = 'H', r = r }
end

-- Distinct::count: exact, or the sketch's estimate.
local function count_distinct(t)
  if not t then
    return 0
  elseif t.d == 'E' then
    return #t.hi
  end
  local z, zeros = 0, 0
  for k = 1, M do
    local rank = t.r[k]
    z = z + POW[rank]
    if rank == 0 then
      zeros = zeros + 1
    end
  end
  local e = ALPHA * M * M / z
  if e <= 2.5 * M and zeros > 0 then
    return M * math.log(M / zeros)
  end
  return e
end

-- TileState::merge: b into a (b the later for ties of `last`); Partial::merge for distinct
-- values.
local function merge(a, b)
  if b.d then
    return merge_distinct(a, b)
  end
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

-- Reads the stored state of `fields` of `key` into `tiles` (false for none), in one call.
local function read_tiles(key, fields, tiles)
  if #fields > 0 then
    local stored = call('HMGET', key, unpack(fields))
    for j, field in ipairs(fields) do
      tiles[field] = decode(stored[j]) or false
    end
  end
end

-- Partial::finish: nil for a null.
local function finish(t, f)
  if f == 'u' then
    return count_distinct(t)
  end
  local n = t and t[1] or 0
  if f == 'c' then
    return n
  elseif n == 0 then
    return nil
  elseif f == 's' then
    return t[2]
  elseif f == 'm' then
    return t[3]
  elseif f == 'n' then
    return t[5]
  elseif f == 'x' then
    return t[6]
  elseif f == 'l' then
    return t[7]
  elseif n < 2 then
    return nil
  end
  local v = t[4] / (n - 1)
  -- Rust's f64::max(0.0): a hair below zero (or NaN) is 0.
  if not (v > 0) then
    v = 0
  end
  if f == 'd' then
    return math.sqrt(v)
  end
  return v
end

-- A protobuf varint of the integer x (a double, |x| < 2^63), negative ones in two's
-- complement over 64 bits: built from two 32-bit halves, which doubles hold exactly.
local function varint(x)
  local hi = math.floor(x / 4294967296)
  local lo = x - hi * 4294967296
  if hi < 0 then
    hi = hi + 4294967296
  end
  local out = {}
  while hi > 0 or lo >= 128 do
    local b = lo % 128
    out[#out + 1] = string.char(b + 128)
    lo = (lo - b) / 128 + (hi % 128) * 33554432
    hi = math.floor(hi / 128)
  end
  out[#out + 1] = string.char(lo)
  return table.concat(out)
end

-- Rust's f64::round (half away from zero); NaN is 0.
local function round(x)
  if x ~= x then
    return 0
  end
  local a = math.abs(x)
  local r = math.floor(a)
  if a - r >= 0.5 then
    r = r + 1
  end
  if x < 0 then
    return -r
  end
  return r
end

local I64_MAX = '\255\255\255\255\255\255\255\255\127'
local I64_MIN = '\128\128\128\128\128\128\128\128\128\1'

-- read::typed, serialized: the value as the feature's type (integers rounded and saturated as
-- Rust's `as` casts do).
local function value_bytes(x, dtype)
  if x == nil then
    return ''
  elseif dtype == 'i' then
    local r = round(x)
    if r >= 9223372036854775808 then
      return '\32' .. I64_MAX
    elseif r <= -9223372036854775808 then
      return '\32' .. I64_MIN
    end
    return '\32' .. varint(r)
  elseif dtype == 'j' then
    local r = round(x)
    if r > 2147483647 then
      r = 2147483647
    elseif r < -2147483648 then
      r = -2147483648
    end
    return '\24' .. varint(r)
  elseif dtype == 'f' then
    return '\53' .. spack('<f', x)
  elseif dtype == 'b' then
    if x ~= 0 then
      return '\56\1'
    end
    return '\56\0'
  end
  return '\41' .. spack('<d', x)
end

-- google.protobuf.Timestamp of a time in microseconds, zero fields left out.
local function timestamp_bytes(us)
  local secs = math.floor(us / 1000000)
  local nanos = (us - secs * 1000000) * 1000
  local s = ''
  if secs ~= 0 then
    s = '\8' .. varint(secs)
  end
  if nanos ~= 0 then
    s = s .. '\16' .. varint(nanos)
  end
  return s
end

-- The Feast layouts, read once per call.
local layouts = {}
local i = 3
for l = 1, tonumber(argv[2]) do
  local layout = { ts = argv[i], outputs = {} }
  local n = tonumber(argv[i + 1])
  i = i + 2
  for o = 1, n do
    layout.outputs[o] = {
      field = argv[i],
      prefix = argv[i + 1],
      hop = tonumber(argv[i + 2]),
      tiles = tonumber(argv[i + 3]),
      sliding = argv[i + 4] == '1',
      f = argv[i + 5],
      dtype = argv[i + 6],
    }
    i = i + 7
  end
  layouts[l] = layout
end

local out = {}
-- Now (us), read once per call when a key is first kept alive.
local now_us
for k = 1, tonumber(argv[1]) do
  local key = KEYS[k]
  local lateness, keep = tonumber(argv[i]), tonumber(argv[i + 1])
  local hop_keep = {}
  for h = 1, tonumber(argv[i + 2]) do
    hop_keep[argv[i + 1 + 2 * h]] = tonumber(argv[i + 2 + 2 * h])
  end
  i = i + 3 + 2 * tonumber(argv[i + 2])
  local cap, idem_cap, nruns = tonumber(argv[i]), tonumber(argv[i + 1]), tonumber(argv[i + 2])
  i = i + 3
  local starts = {}
  -- The newest event time and each lane's mark, read in one call.
  -- (and the times of the plain row and of `_ts` written last, and the idempotency keys).
  local wanted, lane_at = { '\0max', '\0pt', '\0ts', '\0iq' }, {}
  for r = 1, nruns do
    starts[r] = i
    local lane = argv[i]
    if lane ~= '' and not lane_at[lane] then
      wanted[#wanted + 1] = '\0w|' .. lane
      lane_at[lane] = #wanted
    end
    i = i + 6 + 2 * tonumber(argv[i + 5])
  end
  -- The Feast part: its layout, entity hash, TTL, plain row time and the row's first value.
  local layout, fkey, fttl, plain_t, plain_at, nplain = layouts[tonumber(argv[i])], nil, 0, nil, 0, 0
  if layout then
    fkey, fttl, plain_t, nplain = KEYS[tonumber(argv[i + 1])], tonumber(argv[i + 2]), tonumber(argv[i + 3]), tonumber(argv[i + 4])
    plain_at = i + 5
    i = plain_at + 2 * nplain
  else
    i = i + 1
  end
  local got = call('HMGET', key, unpack(wanted))

  local max = tonumber(got[1] or nil)
  local marks, changed_marks = {}, {}
  for lane, at in pairs(lane_at) do
    marks[lane] = got[at]
  end
  local status, redo, applied = {}, false, false
  local new_idem, new_idem_at = {}, {}
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
      -- An `idem:` lane marked for the first time joins the remembered keys.
      if string.sub(lane, 1, 5) == 'idem:' and not got[lane_at[lane]] and not new_idem_at[lane] then
        new_idem[#new_idem + 1] = lane
        new_idem_at[lane] = true
      end
      marks[lane] = last
      changed_marks[lane] = true
    end
    status[r] = s
  end

  if redo then
    out[k] = 'R'
  else
    local hset, pos = {}, 1
    local tiles = {}
    if applied then
      -- The stored state of every tile the applied runs touch, read in one call, then the
      -- runs' states (`deltas`: argument positions, in run order) merged into them.
      local order, deltas = {}, {}
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
      read_tiles(key, order, tiles)
      for _, f in ipairs(deltas) do
        tiles[argv[f]] = merge(tiles[argv[f]], decode(argv[f + 1]))
      end
      for _, field in ipairs(order) do
        hset[pos], hset[pos + 1] = field, encode(tiles[field])
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
    -- The idempotency keys remembered, oldest first: past the cap, the oldest are forgotten.
    local forget = {}
    if #new_idem > 0 then
      local queue = {}
      for lane in string.gmatch(got[4] or '', '[^\n]+') do
        queue[#queue + 1] = lane
      end
      for _, lane in ipairs(new_idem) do
        queue[#queue + 1] = lane
      end
      local drop = #queue - idem_cap
      if drop > 0 then
        for d = 1, drop do
          forget[d] = '\0w|' .. queue[d]
        end
        local kept = {}
        for q = drop + 1, #queue do
          kept[#kept + 1] = queue[q]
        end
        queue = kept
      end
      hset[pos], hset[pos + 1] = '\0iq', table.concat(queue, '\n')
      pos = pos + 2
    end
    -- The plain row: newest event wins (strictly later than the one written).
    local plain = layout and plain_t and (not got[2] or plain_t > tonumber(got[2]))
    if plain then
      hset[pos], hset[pos + 1] = '\0pt', string.format('%d', plain_t)
      pos = pos + 2
    end
    if plain or (layout and applied and #layout.outputs > 0) then
      local fset, fpos = {}, 1
      local wend = -math.huge
      if plain then
        for a = plain_at, plain_at + 2 * nplain - 1 do
          fset[fpos] = argv[a]
          fpos = fpos + 1
        end
        wend = plain_t
      end
      if max and #layout.outputs > 0 then
        -- Each output's window as of the newest event; tiles this call merged are in `tiles`,
        -- the others read in one call.
        local spans, need = {}, {}
        for o, out in ipairs(layout.outputs) do
          local first, last, e
          if out.sliding then
            last = math.floor(max / out.hop)
            first = last - out.tiles + 1
            e = (last + 1) * out.hop
          else
            first = math.floor(max / (out.hop * out.tiles)) * out.tiles
            last = first + out.tiles - 1
            e = (first + out.tiles) * out.hop
          end
          if e > wend then
            wend = e
          end
          spans[o] = { first, last }
          for t = first, last do
            local field = out.prefix .. string.format('%d', t)
            if tiles[field] == nil then
              tiles[field] = false
              need[#need + 1] = field
            end
          end
        end
        read_tiles(key, need, tiles)
        for o, out in ipairs(layout.outputs) do
          local total
          for t = spans[o][1], spans[o][2] do
            local state = tiles[out.prefix .. string.format('%d', t)]
            if state then
              total = merge(total, state)
            end
          end
          fset[fpos], fset[fpos + 1] = out.field, value_bytes(finish(total, out.f), out.dtype)
          fpos = fpos + 2
        end
      end
      -- Strictly later than the `_ts` written before: a reader comparing times never drops it.
      local prev = tonumber(got[3] or nil)
      if prev and wend <= prev then
        wend = prev + 1
      end
      hset[pos], hset[pos + 1] = '\0ts', string.format('%d', wend)
      pos = pos + 2
      fset[fpos], fset[fpos + 1] = layout.ts, timestamp_bytes(wend)
      call('HSET', fkey, unpack(fset, 1, fpos + 1))
      if fttl > 0 then
        call('EXPIRE', fkey, fttl)
      end
    end
    if pos > 1 then
      call('HSET', key, unpack(hset, 1, pos - 1))
    end
    if #forget > 0 then
      call('HDEL', key, unpack(forget))
    end
    if applied or plain then
      if applied and call('HLEN', key) > cap then
        -- Each tile kept as long as its hop's windows need (`hop_keep`).
        local old = {}
        for _, field in ipairs(call('HKEYS', key)) do
          if string.byte(field, 1) ~= 0 then
            local hop, index = string.match(field, '|(%-?%d+)|(%-?%d+)$')
            if hop and (tonumber(index) + 1) * tonumber(hop) <= max - (hop_keep[hop] or keep) then
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
      if max and max > newest then
        newest = max
      end
      local expire = math.floor((newest + keep) / 1000) + 1
      if call('PEXPIRETIME', key) < expire then
        call('PEXPIREAT', key, string.format('%d', expire))
      end
    end
    out[k] = table.concat(status)
    if plain then
      out[k] = out[k] .. '+'
    end
  end
end
return out
