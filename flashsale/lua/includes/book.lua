--[[
  Write a new order holding `serial` (kind, draw) and answer the purchase's reply.
  Inline code shared by purchase-10 and place-8, after admit and a serial is in hand.
  Needs: what admit needs and leaves (includes record, live); sale_id; serial, kind, draw;
  idem_ttl (the idempotency key's TTL in seconds, when has_idem).
]]
rcall('HSET', buyers_key, live_field, live .. string.sub(order_id, -SUFFIX))
if ip ~= '' and ip_mode ~= 'h' then rcall('HINCRBY', ips_key, ip, 1) end

local expires = now + timeout_ms
local o = {order_id, sale_id, user, serial, kind, 'pending_payment', 1, now, expires, now,
  price, currency, '', '', draw, ip, fingerprint}
-- the address is counted by a hold in its IP home bucket: release leaves ips alone here
if ip_mode == 'h' and ip ~= '' then o[O_IP_HELD] = 'h' end
-- as save_order (includes/order.lua), inline: a function would be made at every call
local packed = cmsgpack.pack(o)
rcall('HSET', orders_key, order_id, packed)
rcall('XADD', events_key, '*', 'purchased', packed)
rcall('ZADD', expiry_key, string.format('%d', expires), order_id) -- '%d': purchase-10
if has_idem then rcall('SET', idem_key, order_id, 'EX', idem_ttl) end
-- the engine knows the rest of a new order (its id, the buyer, the time, the status)
return {1, serial, kind, expires, price, currency, draw}
