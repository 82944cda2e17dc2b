--[[
  Release an order's serial: it goes back to the pool (sold again before fresh
  draws), the order leaves its buyer's live orders and its address's count.
  Shared by cancel, expire and refund so that all undo a purchase the same
  way, exactly once (each checks the order's status first).
  Needs: rcall, buyers_key, ips_key, returned_key, and includes order, live.
]]
local function release(o)
  rcall('RPUSH', returned_key, o[O_KIND] .. ':' .. o[O_SERIAL])
  unlist_live(o[O_USER], o[O_ID])
  local ip = o[O_IP]
  if ip ~= '' then
    if rcall('HINCRBY', ips_key, ip, -1) <= 0 then rcall('HDEL', ips_key, ip) end
  end
end
