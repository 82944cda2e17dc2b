--[[
  ip_check-3: read-only, on an order's home bucket: does each held order (ip_hold-3) still
  count for its address? Run by the engine when an address is refused at its limit, to
  end the holds of orders that are gone (docs/design.md "Bucketed drops").

  KEYS[1] orders   hash  order_id -> packed order
  KEYS[2] buyers   hash  "l:<user>" live order suffixes (what the limits count)
  KEYS[3] fences   hash  order ids that may never be placed here (fence-2)

  ARGV[1], ARGV[2], ...  pairs: order_id, the hold's deadline_ms

  Replies: one number per pair, in order:
  1  live: the order exists and is among its buyer's live orders (release.lua not run)
  0  gone: released, or absent and never to appear (fenced, or this node's clock is past
     the deadline: purchase-10 and place-8 refuse after it)
  2  pending: absent, its purchase may still be on its way
]]
local rcall = redis.call
local orders_key, buyers_key, fences_key = KEYS[1], KEYS[2], KEYS[3]

--@include order
--@include live

local t = rcall('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local reply = {}
for i = 1, #ARGV - 1, 2 do
  local order_id, deadline = ARGV[i], tonumber(ARGV[i + 1])
  local o = load_order(orders_key, order_id)
  local state = 2
  if o then
    state = 0
    local live = rcall('HGET', buyers_key, 'l:' .. o[O_USER]) or ''
    local suffix, at = string.sub(order_id, -SUFFIX), 1
    while true do
      local found = string.find(live, suffix, at, true)
      if not found then break end
      if (found - 1) % SUFFIX == 0 then state = 1 break end
      at = found + 1
    end
  elseif rcall('HEXISTS', fences_key, order_id) == 1 or now > deadline then
    state = 0
  end
  reply[#reply + 1] = state
end
return reply
