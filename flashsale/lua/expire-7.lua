--[[
  expire-7: the payment deadline of a pending order has passed; the serial
  returns to the pool. Exactly once, whatever races it (cancel, payment).

  KEYS[1] meta   KEYS[2] buyers   KEYS[3] ips   KEYS[4] returned
  KEYS[5] expiry KEYS[6] events   KEYS[7] orders

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
local expiry_key, events_key, orders_key = KEYS[5], KEYS[6], KEYS[7]
local order_id, now = ARGV[1], tonumber(ARGV[2])

--@include order
--@include transition
--@include live
--@include release

local o = load_order(orders_key, order_id)
if not o then
  rcall('ZREM', expiry_key, order_id)
  return {-9, ''}
end
if o[O_STATUS] ~= 'pending_payment' then
  rcall('ZREM', expiry_key, order_id)
  return not_pending(o)
end
if now < o[O_EXPIRES] then return {-13, o[O_EXPIRES]} end
release(o)
rcall('HINCRBY', meta_key, 'reserved', -1)
rcall('ZREM', expiry_key, order_id)
transition(o, 'expired', now, 'payment timeout')
save_order(orders_key, events_key, o, 'expired')
return order_reply(1, o)
