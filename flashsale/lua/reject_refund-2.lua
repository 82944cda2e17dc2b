--[[
  reject_refund-2: an operator rejected the refund of a cancelled paid order;
  refund_pending -> paid again (the buyer keeps the serial, we keep the money).
  Exactly once.

  KEYS[1] events   KEYS[2] order (hash)

  ARGV[1] order_id   ARGV[2] now_ms   ARGV[3] reason

  Replies:
  {1, order fields...}           paid again
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not refund_pending)
]]
local rcall = redis.call
local events_key, order_key = KEYS[1], KEYS[2]
local now, reason = ARGV[2], ARGV[3]

--@include order

local order = load_order(order_key)
if not order then return {-9, ''} end
if order.status ~= 'refund_pending' then
  local reply = order_reply(-10, order)
  table.insert(reply, 2, order.status)
  return reply
end
update_order(order_key, order, {status = 'paid', version = tonumber(order.version) + 1,
  updated_ms = now, reason = reason})
emit_order(events_key, order, 'refund_rejected', now)
return order_reply(1, order)
