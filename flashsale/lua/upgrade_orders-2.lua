--[[
  upgrade_orders-2: move some buyers' orders of a sale from the form before
  packed records (a hash per order, "n:<user>"/"c:<user>" counters in the
  buyers hash) to the packed form (the orders hash, "l:<user>"/"h:<user>").
  Run by `flashsale db upgrade` (Engine.upgrade_orders) while no purchase
  runs; each call is atomic and idempotent (a buyer already moved has no
  "n:" field any more and is skipped).

  KEYS[1] buyers   KEYS[2] orders

  ARGV[1] old order key prefix ("<ns>:{sale:<id>}:order:", same slot)
  ARGV[2...] per buyer: user_id, n, then its n order ids (oldest first)

  Replies:
  {moved buyers, moved orders}
]]
local rcall = redis.call
local buyers_key, orders_key, prefix = KEYS[1], KEYS[2], ARGV[1]
local FIELDS = {'order_id', 'sale_id', 'user_id', 'serial', 'serial_kind', 'status', 'version',
  'created_ms', 'expires_ms', 'updated_ms', 'price_cents', 'currency', 'payment_id', 'reason',
  'draw', 'ip', 'fingerprint'}
local NUMBERS = {7, 8, 9, 10, 11, 15}
local LIVE = {pending_payment = true, paid = true, delivering = true, delivered = true,
  refund_pending = true}

local buyers, orders, i = 0, 0, 2
while i <= #ARGV do
  local user, n = ARGV[i], tonumber(ARGV[i + 1])
  local ids = {unpack(ARGV, i + 2, i + 1 + n)}
  i = i + 2 + n
  if rcall('HEXISTS', buyers_key, 'n:' .. user) == 1 then
    local live, history = {}, {}
    for _, id in ipairs(ids) do
      local v = rcall('HMGET', prefix .. id, unpack(FIELDS))
      if v[1] then
        for k = 1, #FIELDS do v[k] = v[k] or '' end
        for _, k in ipairs(NUMBERS) do v[k] = tonumber(v[k]) or -1 end
        rcall('HSET', orders_key, id, cmsgpack.pack(v))
        rcall('DEL', prefix .. id)
        local suffix = string.sub(id, -20)
        if LIVE[v[6]] then live[#live + 1] = suffix else history[#history + 1] = suffix end
        orders = orders + 1
      end
    end
    rcall('HSET', buyers_key, 'l:' .. user, table.concat(live), 'h:' .. user, table.concat(history))
    rcall('HDEL', buyers_key, 'n:' .. user, 'c:' .. user)
    buyers = buyers + 1
  end
end
return {buyers, orders}
