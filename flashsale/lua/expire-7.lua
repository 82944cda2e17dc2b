--[[
  expire-7: the payment deadline of a pending order has passed; the serial
  returns to the pool. Exactly once, whatever races it (cancel, payment).

  KEYS[1] meta   KEYS[2] buyers   KEYS[3] ips   KEYS[4] returned
  KEYS[5] expiry KEYS[6] events   KEYS[7] order (hash)

  ARGV[1] order_id
  ARGV[2] now_ms (the deadline must have passed)

  Replies:
  {1, order fields...}           expired
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (it was paid or cancelled)
  {-13, expires_ms}              not due yet
]]
local rcall = redis.call
local meta_key, buyers_key, ips_key, returned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expiry_key, events_key, order_key = KEYS[5], KEYS[6], KEYS[7]
local now = tonumber(ARGV[2])

--@include order
--@include release

local order = load_order(order_key)
if not order then
  rcall('ZREM', expiry_key, ARGV[1])
  return {-9, ''}
end
if order.status ~= 'pending_payment' then
  rcall('ZREM', expiry_key, ARGV[1])
  local reply = order_reply(-10, order)
  table.insert(reply, 2, order.status)
  return reply
end
if now < tonumber(order.expires_ms) then return {-13, order.expires_ms} end
release(order, order_key, 'expired', 'payment timeout', 'expired', now)
return order_reply(1, order)
