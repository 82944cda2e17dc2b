--[[
  take-5: a bucketed drop's buyer found their home bucket dry; lend them one serial of
  this bucket (engine/buckets.py, docs/design.md "Bucketed drops"). The serial leaves
  this bucket's pool and is held by a claim (order id -> serial) until the home bucket
  places the order (give_back 'placed') or refuses it (give_back 'return'); a claim
  left by a crash is swept by the timers, after fencing the order id at home.
  No sale check here: the home bucket's place-8 checks everything again.

  KEYS[1] meta       hash   this bucket's settings and counters ("lent" += 1)
  KEYS[2] segments   hash   serial segments
  KEYS[3] items      hash   explicit serials of list segments
  KEYS[4] returned   list   released serials, lent first
  KEYS[5] claims     hash   order_id -> msgpack {kind, serial, draw, taken_ms, home slot}

  ARGV[1] order_id (of the home bucket's slot)   ARGV[2] home slot
  ARGV[3] now_ms (wall clock: the sweeper compares it with its own)
  ARGV[4] deadline_ms by Redis' clock ('' = none), as purchase-10's ARGV[9]

  Replies:
  {1, kind, serial, draw}   lent (draw -1: a released serial)
  {-1, ''}                  sale_not_found (no such bucket)
  {-5, ''}                  this bucket is empty
  {-18, ''}                 deadline passed: nothing done
]]
local rcall = redis.call
local meta_key, segments_key, items_key, returned_key, claims_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local order_id, home, now, deadline = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

if deadline ~= '' then
  local t = rcall('TIME')
  if t[1] * 1000 + math.floor(t[2] / 1000) > tonumber(deadline) then return {-18, ''} end
end

local m = rcall('HMGET', meta_key, 'drawn', 'total', 'assignment', 'perm_key', 'cur_segment')
if not m[2] then return {-1, ''} end

local kind, serial, draw
local back = rcall('LPOP', returned_key)
if back then
  kind, serial, draw = string.sub(back, 1, 1), string.sub(back, 3), -1
else
  local drawn = tonumber(m[1])
  if drawn >= tonumber(m[2]) then return {-5, ''} end
  --@include pool
  local seg = find_segment(segments_key, drawn, tonumber(m[5] or '1'))
  if seg then serial = serial_in(seg, drawn, items_key, m[3], m[4]) end
  if not serial then return redis.error_reply('ERR serial pool corrupt at draw ' .. drawn) end
  kind, draw = seg[2], drawn
  rcall('HSET', meta_key, 'drawn', drawn + 1, 'cur_segment', seg[1])
end
rcall('HINCRBY', meta_key, 'lent', 1)
rcall('HSET', claims_key, order_id, cmsgpack.pack({kind, serial, draw, now, home}))
return {1, kind, serial, draw}
