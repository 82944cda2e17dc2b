--[[
  purchase-9: sell one serial to a buyer, in one round trip.
  Order of checks: idempotent replay, sale window and status, per-user limit,
  per-IP limit, then the pool (serials released by cancel/expire first, then
  fresh draws). Nothing is written until every check has passed.

  KEYS[1] meta       hash   settings and counters (drawn, reserved, sold, ...)
  KEYS[2] segments   hash   serial segments
  KEYS[3] items      hash   explicit serials of list segments
  KEYS[4] buyers     hash   "c:<user>" live orders, "n:<user>" purchases ever
  KEYS[5] ips        hash   "<ip>" live orders from that address
  KEYS[6] returned   list   released serials ("r:42", "l:A-001"), sold first
  KEYS[7] expiry     zset   order_id scored by its payment deadline (ms)
  KEYS[8] events     stream the sale's event stream
  KEYS[9] idem       string order_id remembered under (buyer, Idempotency-Key);
                            any key of the sale when the request has none

  ARGV[1] sale_id   ARGV[2] user_id   ARGV[3] ip ('' when not tracked)
  ARGV[4] now_ms    ARGV[5] '1' when an Idempotency-Key came, else ''
  ARGV[6] request fingerprint       ARGV[7] idempotency TTL (s)
  ARGV[8] order key prefix ("<ns>:{sale:<id>}:order:")

  Replies:
  {1, order fields...}   new order (layout: ORDER_FIELDS)
  {2, order fields...}   replay of the order remembered under the key
  {-1, ''} sale_not_found        {-2, ''} sale_not_open     {-3, ''} sale_paused
  {-4, ''} sale_closed           {-5, ''} sold_out
  {-6, limit, order_id...}       limit_reached (user), with the buyer's live orders
  {-7, limit}                    limit_reached (ip)
  {-8, order_id}                 idempotency key reused with another request
]]
local rcall = redis.call
local meta_key, segments_key, items_key, buyers_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ips_key, returned_key, expiry_key, events_key, idem_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local sale_id, user, ip, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local has_idem, fingerprint, idem_ttl, order_prefix = ARGV[5] == '1', ARGV[6], ARGV[7], ARGV[8]

--@include order
--@include pool

local function order_id_for(n)
  return sale_id .. '.' .. string.sub(redis.sha1hex(sale_id .. '\n' .. user .. '\n' .. n), 1, 20)
end

if has_idem then
  local remembered = rcall('GET', idem_key)
  if remembered then
    local order_key = order_prefix .. remembered
    if (rcall('HGET', order_key, 'fingerprint') or '') ~= fingerprint then return {-8, remembered} end
    return order_reply(2, load_order(order_key))
  end
end

local m = rcall('HMGET', meta_key, 'status', 'start_ms', 'end_ms', 'per_user_limit',
  'per_ip_limit', 'timeout_ms', 'price_cents', 'currency', 'total', 'drawn',
  'assignment', 'perm_key', 'cur_segment')
local status = m[1]
if not status then return {-1, ''} end
if status == 'closed' or now >= tonumber(m[3]) then return {-4, ''} end
if status == 'paused' then return {-3, ''} end
if status ~= 'open' or now < tonumber(m[2]) then return {-2, ''} end

local limit = tonumber(m[4])
local held = tonumber(rcall('HGET', buyers_key, 'c:' .. user) or '0')
if held >= limit then
  local reply = {-6, limit}
  local n = tonumber(rcall('HGET', buyers_key, 'n:' .. user) or '0')
  for i = n, 1, -1 do
    local id = order_id_for(i)
    local st = rcall('HGET', order_prefix .. id, 'status')
    if st == 'pending_payment' or st == 'paid' or st == 'delivered' then reply[#reply + 1] = id end
    if #reply >= 12 then break end
  end
  return reply
end
local ip_limit = tonumber(m[5])
if ip_limit > 0 and ip ~= '' and tonumber(rcall('HGET', ips_key, ip) or '0') >= ip_limit then
  return {-7, ip_limit}
end

local serial, kind, draw
local back = rcall('LPOP', returned_key)
if back then
  kind, serial, draw = string.sub(back, 1, 1), string.sub(back, 3), -1
else
  local drawn, total = tonumber(m[10]), tonumber(m[9])
  if drawn >= total then return {-5, ''} end
  local segment
  serial, kind, segment = draw_serial(segments_key, items_key, drawn, tonumber(m[13]), m[11], m[12])
  if not serial then return redis.error_reply('ERR serial pool corrupt at draw ' .. drawn) end
  draw = drawn
  rcall('HSET', meta_key, 'drawn', drawn + 1, 'cur_segment', segment)
end

local n = rcall('HINCRBY', buyers_key, 'n:' .. user, 1)
rcall('HINCRBY', buyers_key, 'c:' .. user, 1)
if ip ~= '' then rcall('HINCRBY', ips_key, ip, 1) end
rcall('HINCRBY', meta_key, 'reserved', 1)

local order_id = order_id_for(n)
local order_key = order_prefix .. order_id
local expires = now + tonumber(m[6])
local order = {
  order_id = order_id, sale_id = sale_id, user_id = user, serial = serial, serial_kind = kind,
  status = 'pending_payment', version = 1, created_ms = now, expires_ms = expires,
  updated_ms = now, price_cents = m[7], currency = m[8], payment_id = '', reason = '',
  draw = draw, ip = ip,
}
rcall('HSET', order_key, 'order_id', order_id, 'sale_id', sale_id, 'user_id', user,
  'serial', serial, 'serial_kind', kind, 'status', 'pending_payment', 'version', 1,
  'created_ms', now, 'expires_ms', expires, 'updated_ms', now,
  'price_cents', m[7], 'currency', m[8], 'payment_id', '', 'reason', '',
  'draw', draw, 'ip', ip, 'fingerprint', fingerprint)
rcall('ZADD', expiry_key, expires, order_id)
if has_idem then rcall('SET', idem_key, order_id, 'EX', idem_ttl) end
emit_order(events_key, order, 'purchased', now)
return order_reply(1, order)
