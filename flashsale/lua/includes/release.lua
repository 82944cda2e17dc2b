--[[
  Release an order's serial: it goes back to the pool (sold again before fresh
  draws), the order leaves its buyer's live orders and its address's count.
  Shared by cancel, expire and refund so that all undo a purchase the same
  way, exactly once (each checks the order's status first).
  Needs: rcall, buyers_key, ips_key, returned_key, and includes order, live.
]]
-- The order no longer holds its serial: its suffix moves from live to history.
local function unlist_live(user, order_id)
  local suffix = string.sub(order_id, -SUFFIX)
  local live = rcall('HGET', buyers_key, 'l:' .. user) or ''
  local at = 1
  while true do
    local found = string.find(live, suffix, at, true)
    if not found then break end
    if (found - 1) % SUFFIX == 0 then
      rcall('HSET', buyers_key, 'l:' .. user,
        string.sub(live, 1, found - 1) .. string.sub(live, found + SUFFIX))
      break
    end
    at = found + 1
  end
  local history = rcall('HGET', buyers_key, 'h:' .. user) or ''
  rcall('HSET', buyers_key, 'h:' .. user, history .. suffix)
end

local function release(o)
  rcall('RPUSH', returned_key, o[O_KIND] .. ':' .. o[O_SERIAL])
  unlist_live(o[O_USER], o[O_ID])
  local ip = o[O_IP]
  -- an address held in its IP home bucket is uncounted there (the engine's ip_unhold-2,
  -- or the next refusal's reconciliation), never here
  if ip ~= '' and o[O_IP_HELD] ~= 'h' then
    if rcall('HINCRBY', ips_key, ip, -1) <= 0 then rcall('HDEL', ips_key, ip) end
  end
end
