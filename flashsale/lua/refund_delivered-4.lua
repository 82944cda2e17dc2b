--[[
  refund_delivered-4: an approved after-sales ticket of a delivered (or
  completed) order was refunded; delivered | completed -> refunded. The
  token was minted to the buyer, so the serial never returns to the pool: it
  stays counted in the sale's `sold`, and the meta's `kept` counts these
  orders (the audit checks sold = orders in paid statuses + kept). The buyer
  still holds the token: the order stays in its buyer's live orders and its
  address's count (the limits count tokens held; the audit counts a refunded
  order listed live as kept). It leaves its completion schedule. Exactly
  once: refunded answers 3.

  KEYS[1] meta   KEYS[2] completion   KEYS[3] events   KEYS[4] orders

  ARGV[1] order_id   ARGV[2] now_ms   ARGV[3] reason

  Replies:
  {1, order fields...}           refunded now (event refunded_after_delivery)
  {3, order fields...}           already refunded (a replay)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not delivered or completed)
]]
local rcall = redis.call
local meta_key, completion_key, events_key, orders_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local order_id, now, reason = ARGV[1], ARGV[2], ARGV[3]

--@include order
--@include transition

local o, done = order_or_reply(orders_key, order_id, 'refunded')
if done then return done end
local status = o[O_STATUS]
if status ~= 'delivered' and status ~= 'completed' then return not_pending(o) end
rcall('ZREM', completion_key, order_id)
rcall('HINCRBY', meta_key, 'kept', 1)
transition(o, 'refunded', now, reason)
save_order(orders_key, events_key, o, 'refunded_after_delivery')
return order_reply(1, o)
