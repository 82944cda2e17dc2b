--[[
  confirm_payment-4: a payment for the order succeeded; pending -> paid.
  The serial moves from reserved to sold. An order that expired or was
  cancelled is refused with its status, so the payment flow can refund the
  money instead of keeping it silently; an order already paid by another
  payment is refused with that payment's id (a duplicate payment).

  KEYS[1] meta   KEYS[2] expiry   KEYS[3] events   KEYS[4] orders

  ARGV[1] order_id   ARGV[2] payment_id   ARGV[3] now_ms

  Replies:
  {1, order fields...}           paid now
  {3, order fields...}           already paid by this same payment (a replay)
  {-9, ''}                       order_not_found
  {-10, status, order fields...} order_not_pending (expired, cancelled, or
                                 paid by another payment: see payment_id)
]]
local rcall = redis.call
local meta_key, expiry_key, events_key, orders_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local order_id, payment_id, now = ARGV[1], ARGV[2], ARGV[3]

--@include order
--@include transition

local o = load_order(orders_key, order_id)
if not o then return {-9, ''} end
if o[O_STATUS] == 'paid' and o[O_PAYMENT] == payment_id then return order_reply(3, o) end
if o[O_STATUS] ~= 'pending_payment' then return not_pending(o) end
transition(o, 'paid', now)
o[O_PAYMENT] = payment_id
rcall('HINCRBY', meta_key, 'reserved', -1)
rcall('HINCRBY', meta_key, 'sold', 1)
rcall('ZREM', expiry_key, order_id)
save_order(orders_key, events_key, o, 'paid')
return order_reply(1, o)
