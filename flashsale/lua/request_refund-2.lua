--[[
  request_refund-2: the buyer (or ops) cancels a paid order that is not
  delivered yet; paid -> refund_pending. The serial stays counted as sold
  until an operator decides: approve (refund-6) returns it to the pool,
  reject (reject_refund-2) makes the order paid again. Exactly once: a second
  request finds the order no longer paid and changes nothing.

  KEYS[1] events   KEYS[2] order (hash)

  ARGV[1] order_id
  ARGV[2] user_id of the caller, '' when ops ask
  ARGV[3] now_ms
  ARGV[4] reason (recorded on the order)

  Replies:
  {1, order fields...}           refund_pending now
  {3, order fields...}           already refund_pending (a replay)
  {-9, ''}                       order_not_found (also: not the caller's order)
  {-10, status, order fields...} order_not_pending (not paid: pending, delivered, ...)
]]
local rcall = redis.call
local events_key, order_key = KEYS[1], KEYS[2]
local caller, now, reason = ARGV[2], ARGV[3], ARGV[4]

--@include order

local order = load_order(order_key)
if not order or (caller ~= '' and order.user_id ~= caller) then return {-9, ''} end
if order.status == 'refund_pending' then return order_reply(3, order) end
if order.status ~= 'paid' then
  local reply = order_reply(-10, order)
  table.insert(reply, 2, order.status)
  return reply
end
update_order(order_key, order, {status = 'refund_pending', version = tonumber(order.version) + 1,
  updated_ms = now, reason = reason})
emit_order(events_key, order, 'refund_requested', now)
return order_reply(1, order)
