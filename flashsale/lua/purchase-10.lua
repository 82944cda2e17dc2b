--[[
  purchase-10: sell one serial to a buyer, in one round trip.
  Order of checks: idempotent replay, sale window and status, per-user limit,
  per-IP limit, then the pool (serials released by cancel/expire first, then
  fresh draws). Nothing is written until every check has passed. The order id
  is drawn by the engine (Python), not here.

  KEYS[1] meta       hash   settings and counters (drawn, reserved, sold, ...), with the
                            purchase's packed copies "hot2" and "cur2" (includes/hot.lua)
  KEYS[2] segments   hash   serial segments
  KEYS[3] items      hash   explicit serials of list segments
  KEYS[4] buyers     hash   "l:<user>" live order suffixes, "h:<user>" released ones
  KEYS[5] ips        hash   "<ip>" live orders from that address
  KEYS[6] returned   list   released serials ("r:42", "l:A-001"), sold first
  KEYS[7] expiry     zset   order_id scored by its payment deadline (ms)
  KEYS[8] events     stream the sale's event stream
  KEYS[9] orders     hash   order_id -> packed order (includes/order.lua)
  KEYS[10] idem      string order_id remembered under (buyer, Idempotency-Key);
                            any key of the sale when the request has none

  ARGV[1] sale_id   ARGV[2] user_id   ARGV[3] ip ('' when not tracked)
  ARGV[4] now_ms
  ARGV[5] the new order's id ("<sale_id>.<20 hex>", random)
  ARGV[6] deadline_ms by Redis' clock ('' = none): past it the caller has stopped waiting,
          so the script does nothing (a call answered 503 never sells later)
  ARGV[7] ip_mode (absent = ''): where the address is counted, includes/admit.lua
  ARGV[8] request fingerprint   ARGV[9] idempotency TTL (s): both only when an
          Idempotency-Key came (then ARGV[7] is sent too). The usual purchase sends
          six values: each ARGV element costs Redis ~0.9 k instructions (docs/design.md)

  Replies:
  {1, serial, serial_kind, expires_ms, price_cents, currency, draw}   new order
  {2, order fields...}   replay of the order remembered under the key
  {-1, ''} sale_not_found        {-2, ''} sale_not_open     {-3, ''} sale_paused
  {-4, ''} sale_closed           {-5, ''} sold_out
  {-6, limit, order_id...}       limit_reached (user), with up to 10 live orders
  {-7, limit}                    limit_reached (ip)
  {-8, order_id}                 idempotency key reused with another request
  {-18, ''}                      deadline passed: nothing done (engine_unavailable)
  {-20, ''}                      ip_mode 'o' but the IP limit is on: hold first (internal)
]]
local rcall = redis.call
local meta_key, segments_key, items_key, buyers_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ips_key, returned_key, expiry_key, events_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local orders_key, idem_key = KEYS[9], KEYS[10]
local sale_id, user, ip, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local order_id, ip_mode, idem_ttl = ARGV[5], ARGV[7] or '', ARGV[9]
local has_idem, fingerprint = idem_ttl ~= nil, ARGV[8] or ''

--@include record
--@include live

local deadline = ARGV[6]
if deadline and deadline ~= '' then
  -- passed when Redis' clock in ms is past it; the microseconds are read only in the
  -- deadline's own second (each string read as a number costs a strtod)
  local t, due = rcall('TIME'), tonumber(deadline)
  local second_ms = tonumber(t[1]) * 1000
  if second_ms + 999 > due and second_ms + math.floor(tonumber(t[2]) / 1000) > due then
    return {-18, ''}
  end
end

--@include admit

local serial, kind, draw
local back = rcall('LPOP', returned_key)
if back then
  kind, serial, draw = string.sub(back, 1, 1), string.sub(back, 3), -1
  rcall('HINCRBY', meta_key, 'reserved', 1)
else
  local drawn = tonumber(m[2])
  if drawn >= total then return {-5, ''} end
  -- the current segment is cached in meta ("cur2", includes/hot.lua): no segments read
  -- while it lasts, and a sequential range draw needs no more than an addition
  -- numbers go to redis.call as strings printed with '%d': Redis would print each
  -- with '%.17g', several times the cost (docs/design.md, "What costs what")
  local drawn_after
  local number, seg_kind, lo, size, offset
  if m[4] then number, seg_kind, lo, size, offset = cmsgpack.unpack(m[4]) end
  local moved = not number or drawn >= offset + size
  local seg
  if not moved and seg_kind == 'r' and assignment ~= 'random' then
    serial = string.format('%d', lo + drawn - offset)
    kind = 'r'
    -- serials 1..n from draw 0 (most sales): the serial is also the new "drawn"
    if lo - offset == 1 then drawn_after = serial end
  else
    --@include pool
    if moved then
      seg = find_segment(segments_key, drawn, number or 1)
    else
      seg = {number, seg_kind, lo, size, offset}
    end
    if seg then serial, kind = serial_in(seg, drawn, items_key, assignment, perm_key), seg[2] end
  end
  if not serial then return redis.error_reply('ERR serial pool corrupt at draw ' .. drawn) end
  draw = drawn
  drawn_after = drawn_after or string.format('%d', drawn + 1)
  local reserved = string.format('%d', tonumber(m[3]) + 1)
  if moved then
    rcall('HSET', meta_key, 'drawn', drawn_after, 'reserved', reserved,
      'cur_segment', seg[1], 'cur2', cmsgpack.pack(unpack(seg, 1, 5)))
  else
    rcall('HSET', meta_key, 'drawn', drawn_after, 'reserved', reserved)
  end
end

--@include book
