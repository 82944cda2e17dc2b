--[[
  complete-3: a delivered order is completed; delivered -> completed. By its
  buyer at any time, or by the timers once the sale's after-sales window has
  passed. Idempotent: completed answers 3.

  KEYS[1] completion (zset: delivered orders by the end of their window)
  KEYS[2] events   KEYS[3] orders

  ARGV[1] order_id
  ARGV[2] user_id of the buyer, '' when the timers complete (then the window
          must have passed)
  ARGV[3] now_ms

  Replies:
  {1, order fields...}           completed now
  {3, order fields...}           already completed (a replay)
  {-9, ''}                       order_not_found (also: not the caller's order)
  {-10, status, order fields...} order_not_pending (not delivered)
  {-13, due_ms}                  not due yet (timers only)
]]
local rcall = redis.call
local completion_key, events_key, orders_key = KEYS[1], KEYS[2], KEYS[3]
local order_id, caller, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

--@include order
--@include transition

local o = load_order(orders_key, order_id)
if not o or (caller ~= '' and o[O_USER] ~= caller) then return {-9, ''} end
if o[O_STATUS] == 'completed' then
  rcall('ZREM', completion_key, order_id)
  return order_reply(3, o)
end
if o[O_STATUS] ~= 'delivered' then
  if caller == '' then rcall('ZREM', completion_key, order_id) end
  return not_pending(o)
end
if caller == '' then
  local due = tonumber(rcall('ZSCORE', completion_key, order_id) or '0')
  if now < due then return {-13, due} end
end
rcall('ZREM', completion_key, order_id)
transition(o, 'completed', now)
save_order(orders_key, events_key, o, 'completed')
return order_reply(1, o)
