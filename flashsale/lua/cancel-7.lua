--[[
  cancel-7: the buyer (or ops, or the payment flow) cancels a pending order.
  The serial returns to the pool. Exactly once: a second cancel, or a cancel
  racing expire, finds the order no longer pending and changes nothing.

  KEYS[1] meta   KEYS[2] buyers   KEYS[3] ips   KEYS[4] returned
  KEYS[5] expiry KEYS[6] events   KEYS[7] orders

  ARGV[1] order_id
  ARGV[2] user_id of the caller, '' when ops or the system cancels
  ARGV[3] now_ms
  ARGV[4] reason (free text, recorded on the order)

  Replies:
  {1, order fields...}           cancelled
  {-9, ''}                       order_not_found (also: not the caller's order)
  {-16, 'delivering'}             order_in_delivery
  {-17, status}                  order_delivered (delivered or completed)
  {-10, status, order fields...} order_not_pending
]]
local rcall = redis.call
local meta_key, buyers_key, ips_key, returned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expiry_key, events_key, orders_key = KEYS[5], KEYS[6], KEYS[7]
local order_id, caller, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

--@include order
--@include transition
--@include live
--@include release

local o = load_order(orders_key, order_id)
if not o or (caller ~= '' and o[O_USER] ~= caller) then return {-9, ''} end
local refused = in_delivery(o)
if refused then return refused end
if o[O_STATUS] ~= 'pending_payment' then return not_pending(o) end
release(o)
rcall('HINCRBY', meta_key, 'reserved', -1)
rcall('ZREM', expiry_key, order_id)
transition(o, 'cancelled', now, reason)
save_order(orders_key, events_key, o, 'cancelled')
return order_reply(1, o)
