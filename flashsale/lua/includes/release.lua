--[[
  Release a pending order: its serial goes back to the pool (sold again before
  fresh draws), the buyer's and the address's live counts go down, the
  reservation ends and the expiry is unscheduled. Shared by cancel and expire
  so that both undo a purchase the same way, exactly once.
  Needs: meta_key, buyers_key, ips_key, returned_key, expiry_key, events_key.
]]
local function release(order, order_key, new_status, reason, event_type, now)
  rcall('RPUSH', returned_key, order.serial_kind .. ':' .. order.serial)
  rcall('HINCRBY', buyers_key, 'c:' .. order.user_id, -1)
  if order.ip ~= '' then
    if rcall('HINCRBY', ips_key, order.ip, -1) <= 0 then rcall('HDEL', ips_key, order.ip) end
  end
  rcall('HINCRBY', meta_key, 'reserved', -1)
  rcall('ZREM', expiry_key, order.order_id)
  update_order(order_key, order, {status = new_status, version = tonumber(order.version) + 1,
    updated_ms = now, reason = reason})
  emit_order(events_key, order, event_type, now)
end
