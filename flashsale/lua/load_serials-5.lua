--[[
  load_serials-5: a bucketed drop's list is longer than one creation chunk; add this
  bucket's share of its next segment (docs/design.md, "Bucketed drops"). Every bucket
  gets every segment of the list (its number, size and first draw, so a draw number
  means the same serial everywhere) but stores only the items its window draws
  (includes/segments.lua, append_share). Runs while the creation that wrote the bucket
  (create_sale-6, status 'loading') still owns it; the creator opens the sale with a
  tune once every bucket is loaded.

  KEYS[1] meta       hash   the bucket's settings (its `segments` count)
  KEYS[2] segments   hash   serial segments
  KEYS[3] items      hash   explicit serials of list segments
  KEYS[4] itemset    set    explicit serials
  KEYS[5] creation   string the creation token of this slot (create_sale-6's creation key)

  ARGV[1] creation token (create_sale-6's ARGV[19])
  ARGV[2...] 's', total, off, size, j, serial, j, serial, ...: the share of the segment
             starting at draw `off` (the next one: the last segment ends at `off`)

  Replies:
  {1, segments}   added; or already there (the same segment sent again), nothing written
  {-1, ''}        sale_not_found (no such bucket)
  {-12, ''}       sale_exists: a newer creation of the id owns this slot
  {-14, reason}   the bucket is not loading, or the segment is not the next one
]]
local rcall = redis.call
local meta_key, segments_key, items_key, itemset_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token = ARGV[1]

--@include segments

local m = rcall('HMGET', meta_key, 'status', 'segments')
if not m[1] then return {-1, ''} end
if rcall('GET', KEYS[5]) ~= token then return {-12, ''} end
local spec = segment_spec(2)
if not spec or spec.kind ~= 's' then return redis.error_reply('ERR bad segment spec') end
local count = tonumber(m[2] or '0')
local last = rcall('HMGET', segments_key, count .. ':off', count .. ':size')
local last_off, last_end = tonumber(last[1] or '0'), tonumber(last[1] or '0') + tonumber(last[2] or '0')
if count > 0 and last_off == spec.off then return {1, count} end  -- sent again
if m[1] ~= 'loading' then return {-14, 'the sale is not loading its serials'} end
if spec.off ~= last_end then
  return {-14, 'segment at draw ' .. spec.off .. ' is not the next one (' .. last_end .. ')'}
end
append_share(spec)
return {1, count + 1}
