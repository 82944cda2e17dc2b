--[[
  request_refund-2: the buyer (or ops) cancels a paid order that is not
  delivered yet; paid -> refund_pending. The serial stays counted as sold
  until an operator decides: approve (refund-6) returns it to the pool,
  reject (reject_refund-2) makes the order paid again. Exactly once: a second
  request finds the order no longer paid and changes nothing.

  KEYS[1] events   KEYS[2] orders

  ARGV[1] order_id
  ARGV[2] user_id of the caller, '' when ops ask
  ARGV[3] now_ms
  ARGV[4] reason (recorded on the order)

  Replies:
  {1, order fields...}           refund_pending now
  {3, order fields...}           already refund_pending (a replay)
  {-9, ''}                       order_not_found (also: not the caller's order)
  {-16, 'delivering'}             order_in_delivery
  {-17, status}                  order_delivered (delivered or completed)
  {-10, status, order fields...} order_not_pending (not paid: pending, delivering, ...)
]]
local rcall = redis.call
local events_key, orders_key = KEYS[1], KEYS[2]
local order_id, caller, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

--@include order
--@include transition

local o = load_order(orders_key, order_id)
if not o or (caller ~= '' and o[O_USER] ~= caller) then return {-9, ''} end
if o[O_STATUS] == 'refund_pending' then return order_reply(3, o) end
local refused = in_delivery(o)
if refused then return refused end
if o[O_STATUS] ~= 'paid' then return not_pending(o) end
transition(o, 'refund_pending', now, reason)
save_order(orders_key, events_key, o, 'refund_requested')
return order_reply(1, o)
