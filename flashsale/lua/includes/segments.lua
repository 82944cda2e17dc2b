--[[
  Append a segment of serials to a sale (create and add_serials).
  A range segment costs three hash fields whatever its size; a list segment
  stores its items (and a set of them, to refuse duplicates).
  Needs: meta_key, segments_key, items_key, itemset_key.
  `spec` is {kind='r', lo=, hi=} or {kind='l', items={...}}, or a bucket's share of a
  bucketed drop's list segment, {kind='s', total=, off=, size=, pos={...}, items={...}}
  (append_share below).
  Returns the number of serials added, or nil, reason when refused.
]]
local function ranges_overlap(lo, hi)
  local count = tonumber(rcall('HGET', meta_key, 'segments') or '0')
  for k = 1, count do
    local seg = rcall('HMGET', segments_key, k .. ':kind', k .. ':lo', k .. ':size')
    if seg[1] == 'r' then
      local seg_lo = tonumber(seg[2])
      local seg_hi = seg_lo + tonumber(seg[3]) - 1
      if lo <= seg_hi and seg_lo <= hi then return true end
    end
  end
  return false
end

local function append_segment(spec)
  local count = tonumber(rcall('HGET', meta_key, 'segments') or '0')
  local offset = tonumber(rcall('HGET', meta_key, 'total') or '0')
  local k = count + 1
  local size
  if spec.kind == 'r' then
    if ranges_overlap(spec.lo, spec.hi) then return nil, 'serials overlap an existing range' end
    size = spec.hi - spec.lo + 1
    rcall('HSET', segments_key, k .. ':kind', 'r', k .. ':lo', string.format('%d', spec.lo),
      k .. ':size', size, k .. ':off', offset)
  else
    size = #spec.items
    -- check everything first: Redis has no rollback
    local within = {}
    for j = 1, size do
      if within[spec.items[j]] then return nil, 'serial listed twice: ' .. spec.items[j] end
      within[spec.items[j]] = true
    end
    for start = 1, size, 5000 do
      local stop = math.min(start + 4999, size)
      local seen = rcall('SMISMEMBER', itemset_key, unpack(spec.items, start, stop))
      for i = 1, #seen do
        if seen[i] == 1 then return nil, 'serial already in the sale: ' .. spec.items[start + i - 1] end
      end
    end
    for j = 1, size do
      rcall('HSET', items_key, k .. ':' .. (j - 1), spec.items[j])
    end
    for start = 1, size, 5000 do
      rcall('SADD', itemset_key, unpack(spec.items, start, math.min(start + 4999, size)))
    end
    rcall('HSET', segments_key, k .. ':kind', 'l', k .. ':lo', 0, k .. ':size', size, k .. ':off', offset)
  end
  rcall('HSET', meta_key, 'segments', k, 'total', offset + size)
  return size
end

--[[
  A bucketed drop's list, one bucket's share of one segment (engine/buckets.py,
  list_shares): the segment as the whole drop has it (a list segment of `size` serials
  at draw `off`, so a draw number means the same serial in every bucket) holding only
  the items this bucket can draw: item `j` of the segment is stored as "k:j" only for
  the positions `pos` that draws of this bucket's window land on (after the drop's
  permutation when random). The engine checked the whole list for duplicates (it is
  split over slots no script sees at once); the meta's `total` (the window's end) is
  the creator's to set.
]]
local function append_share(spec)
  local k = tonumber(rcall('HGET', meta_key, 'segments') or '0') + 1
  for j = 1, #spec.pos do
    rcall('HSET', items_key, k .. ':' .. spec.pos[j], spec.items[j])
  end
  for start = 1, #spec.items, 5000 do
    rcall('SADD', itemset_key, unpack(spec.items, start, math.min(start + 4999, #spec.items)))
  end
  rcall('HSET', segments_key, k .. ':kind', 'l', k .. ':lo', 0, k .. ':size', spec.size,
    k .. ':off', spec.off)
  rcall('HSET', meta_key, 'segments', k)
  return spec.size
end

-- Parse a segment spec from ARGV starting at index i: 'r', lo, hi | 'l', item... |
-- 's', total, off, size, j, item, j, item... (a bucket's share: append_share)
local function segment_spec(i)
  local kind = ARGV[i]
  if kind == 'r' then
    return {kind = 'r', lo = tonumber(ARGV[i + 1]), hi = tonumber(ARGV[i + 2])}
  elseif kind == 'l' then
    local items = {}
    for j = i + 1, #ARGV do items[#items + 1] = ARGV[j] end
    return {kind = 'l', items = items}
  elseif kind == 's' then
    local pos, items = {}, {}
    for j = i + 4, #ARGV, 2 do
      pos[#pos + 1] = ARGV[j]
      items[#items + 1] = ARGV[j + 1]
    end
    return {kind = 's', total = tonumber(ARGV[i + 1]), off = tonumber(ARGV[i + 2]),
      size = tonumber(ARGV[i + 3]), pos = pos, items = items}
  end
  return nil
end
