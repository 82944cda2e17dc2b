--[[
  Serial pool: draw number d (0, 1, 2, ...) maps to one serial with no
  per-serial memory for ranges. Segments are appended by create and by
  add_serials; each is a range (lo + j) or a list (items hash "k:j").
  Random assignment applies a keyed permutation inside each segment: a
  4-round Feistel network over the smallest even power of two >= size, with
  cycle walking back into [0, size). engine/permutation.py mirrors it exactly,
  so anyone holding the revealed key can recompute every draw.
]]
local function feistel(x, half_bits, key)
  local half = 2 ^ half_bits
  local left, right = math.floor(x / half), x % half
  for round = 1, 4 do
    local f = tonumber(string.sub(redis.sha1hex(key .. ':' .. round .. ':' .. right), 1, 8), 16) % half
    left, right = right, (left + f) % half
  end
  return left * half + right
end

local function permute(x, size, key)
  local half_bits = 1
  while 4 ^ half_bits < size do half_bits = half_bits + 1 end
  repeat x = feistel(x, half_bits, key) until x < size
  return x
end

-- The serial of draw `draw` in a segment {number, kind, lo, size, offset}.
local function serial_in(seg, draw, items_key, assignment, perm_key)
  local j = draw - seg[5]
  if assignment == 'random' then j = permute(j, seg[4], perm_key .. ':' .. seg[1]) end
  if seg[2] == 'r' then return string.format('%d', seg[3] + j) end
  return rcall('HGET', items_key, seg[1] .. ':' .. j)
end

-- The segment holding draw `draw` as {number, kind, lo, size, offset}, searching from
-- segment `segment` on (draws only move forward); nil past the last segment.
local function find_segment(segments_key, draw, segment)
  while true do
    local seg = rcall('HMGET', segments_key, segment .. ':kind', segment .. ':lo',
      segment .. ':size', segment .. ':off')
    if not seg[1] then return nil end
    local size, offset = tonumber(seg[3]), tonumber(seg[4])
    if draw < offset + size then return {segment, seg[1], tonumber(seg[2]), size, offset} end
    segment = segment + 1
  end
end
