--[[
  refund-6: an operator approved the refund of a paid order that was
  cancelled before delivery; refund_pending -> refunded. The serial returns
  to the pool (sold again before fresh draws) and leaves the sold count; the
  buyer's live orders and the address's count lose it. Exactly once.

  KEYS[1] meta   KEYS[2] buyers   KEYS[3] ips   KEYS[4] returned
  KEYS[5] events KEYS[6] orders

  ARGV[1] order_id   ARGV[2] now_ms   ARGV[3] reason

  Replies:
  {1, order fields...}           refunded now
  {3, order fields...}           already refunded (a replay)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not refund_pending)
]]
local rcall = redis.call
local meta_key, buyers_key, ips_key, returned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, orders_key = KEYS[5], KEYS[6]
local order_id, now, reason = ARGV[1], ARGV[2], ARGV[3]

--@include order
--@include transition
--@include live
--@include release

local o, done = order_or_reply(orders_key, order_id, 'refunded')
if done then return done end
if o[O_STATUS] ~= 'refund_pending' then return not_pending(o) end
release(o)
rcall('HINCRBY', meta_key, 'sold', -1)
transition(o, 'refunded', now, reason)
save_order(orders_key, events_key, o, 'refunded')
return order_reply(1, o)
