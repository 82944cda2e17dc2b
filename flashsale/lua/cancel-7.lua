--[[
  cancel-7: the buyer (or ops, or the payment flow) cancels a pending order.
  The serial returns to the pool. Exactly once: a second cancel, or a cancel
  racing expire, finds the order no longer pending and changes nothing.

  KEYS[1] meta   KEYS[2] buyers   KEYS[3] ips   KEYS[4] returned
  KEYS[5] expiry KEYS[6] events   KEYS[7] order (hash)

  ARGV[1] order_id
  ARGV[2] user_id of the caller, '' when ops or the system cancels
  ARGV[3] now_ms
  ARGV[4] reason (free text, recorded on the order)

  Replies:
  {1, order fields...}           cancelled
  {-9, ''}                       order_not_found (also: not the caller's order)
  {-10, status, order fields...} order_not_pending
]]
local rcall = redis.call
local meta_key, buyers_key, ips_key, returned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expiry_key, events_key, order_key = KEYS[5], KEYS[6], KEYS[7]
local caller, now, reason = ARGV[2], ARGV[3], ARGV[4]

--@include order
--@include release

local order = load_order(order_key)
if not order or (caller ~= '' and order.user_id ~= caller) then return {-9, ''} end
if order.status ~= 'pending_payment' then
  local reply = order_reply(-10, order)
  table.insert(reply, 2, order.status)
  return reply
end
release(order, order_key, 'cancelled', reason, 'cancelled', now)
return order_reply(1, order)
