--[[
  start_delivery-2: the deliverer is about to sign the order's first mint;
  paid -> delivering. From then on the order cannot be cancelled for a refund
  (cancel answers order_in_delivery). Idempotent: an order already delivering
  answers 3 (the deliverer retries after a crash).

  KEYS[1] events   KEYS[2] orders

  ARGV[1] order_id   ARGV[2] now_ms

  Replies:
  {1, order fields...}           delivering now
  {3, order fields...}           already delivering (a replay)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not paid: refund_pending, ...)
]]
local rcall = redis.call
local events_key, orders_key = KEYS[1], KEYS[2]
local order_id, now = ARGV[1], ARGV[2]

--@include order
--@include transition

local o, done = order_or_reply(orders_key, order_id, 'delivering')
if done then return done end
if o[O_STATUS] ~= 'paid' then return not_pending(o) end
transition(o, 'delivering', now)
save_order(orders_key, events_key, o, 'delivery_started')
return order_reply(1, o)
