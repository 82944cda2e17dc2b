--[[
  confirm_delivery-4: the order's token is minted to its buyer and confirmed;
  delivering -> delivered. The order is scheduled for completion once the
  sale's after-sales window has passed (the timers run complete-3 then).
  Idempotent: delivered or completed answers 3.

  KEYS[1] meta   KEYS[2] completion (zset: delivered orders by the end of their
  after-sales window)   KEYS[3] events   KEYS[4] orders

  ARGV[1] order_id   ARGV[2] now_ms

  Replies:
  {1, order fields...}           delivered now
  {3, order fields...}           already delivered or completed (a replay)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (not delivering)
]]
local rcall = redis.call
local meta_key, completion_key, events_key, orders_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local order_id, now = ARGV[1], tonumber(ARGV[2])

--@include order
--@include transition

local o = load_order(orders_key, order_id)
if not o then return {-9, ''} end
local status = o[O_STATUS]
if status == 'delivered' or status == 'completed' then return order_reply(3, o) end
if status ~= 'delivering' then return not_pending(o) end
local window = tonumber(rcall('HGET', meta_key, 'after_sales_ms') or '604800000')
transition(o, 'delivered', now)
rcall('ZADD', completion_key, now + window, order_id)
save_order(orders_key, events_key, o, 'delivered')
return order_reply(1, o)
