--[[
  reject_refund-2: an operator rejected the refund of a cancelled paid order;
  refund_pending -> paid again (the buyer keeps the serial, we keep the money).
  Exactly once.

  KEYS[1] events   KEYS[2] orders

  ARGV[1] order_id   ARGV[2] now_ms   ARGV[3] reason

  Replies:
  {1, order fields...}           paid again
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not refund_pending)
]]
local rcall = redis.call
local events_key, orders_key = KEYS[1], KEYS[2]
local order_id, now, reason = ARGV[1], ARGV[2], ARGV[3]

--@include order
--@include transition

local o = load_order(orders_key, order_id)
if not o then return {-9, ''} end
if o[O_STATUS] ~= 'refund_pending' then return not_pending(o) end
transition(o, 'paid', now, reason)
save_order(orders_key, events_key, o, 'refund_rejected')
return order_reply(1, o)
