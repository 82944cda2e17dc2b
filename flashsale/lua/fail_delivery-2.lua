--[[
  fail_delivery-2: the deliverer gave up minting the order's token (an alert
  says why); delivering -> paid, with the reason. The order is paid and not
  delivered again: an operator may refund it (cancel) or deliver it later.
  Idempotent: an order already back to paid answers 3.

  KEYS[1] events   KEYS[2] orders

  ARGV[1] order_id   ARGV[2] now_ms   ARGV[3] reason

  Replies:
  {1, order fields...}           paid again now
  {3, order fields...}           already paid (a replay, or never started)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (delivered, refunded, ...)
]]
local rcall = redis.call
local events_key, orders_key = KEYS[1], KEYS[2]
local order_id, now, reason = ARGV[1], ARGV[2], ARGV[3]

--@include order
--@include transition

local o, done = order_or_reply(orders_key, order_id, 'paid')
if done then return done end
if o[O_STATUS] ~= 'delivering' then return not_pending(o) end
transition(o, 'paid', now, reason)
save_order(orders_key, events_key, o, 'delivery_failed')
return order_reply(1, o)
