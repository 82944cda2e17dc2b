--[[
  refund-6: an operator approved the refund of a paid order that was
  cancelled before delivery; refund_pending -> refunded. The serial returns
  to the pool (sold again before fresh draws) and leaves the sold count; the
  buyer's and the address's live counts go down. Exactly once.

  KEYS[1] meta   KEYS[2] buyers   KEYS[3] ips   KEYS[4] returned
  KEYS[5] events KEYS[6] order (hash)

  ARGV[1] order_id   ARGV[2] now_ms   ARGV[3] reason

  Replies:
  {1, order fields...}           refunded now
  {3, order fields...}           already refunded (a replay)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not refund_pending)
]]
local rcall = redis.call
local meta_key, buyers_key, ips_key, returned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, order_key = KEYS[5], KEYS[6]
local now, reason = ARGV[2], ARGV[3]

--@include order

local order = load_order(order_key)
if not order then return {-9, ''} end
if order.status == 'refunded' then return order_reply(3, order) end
if order.status ~= 'refund_pending' then
  local reply = order_reply(-10, order)
  table.insert(reply, 2, order.status)
  return reply
end
rcall('RPUSH', returned_key, order.serial_kind .. ':' .. order.serial)
rcall('HINCRBY', buyers_key, 'c:' .. order.user_id, -1)
if order.ip ~= '' then
  if rcall('HINCRBY', ips_key, order.ip, -1) <= 0 then rcall('HDEL', ips_key, order.ip) end
end
rcall('HINCRBY', meta_key, 'sold', -1)
update_order(order_key, order, {status = 'refunded', version = tonumber(order.version) + 1,
  updated_ms = now, reason = reason})
emit_order(events_key, order, 'refunded', now)
return order_reply(1, order)
