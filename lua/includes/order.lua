--[[
  Order record helpers, inlined into every script that touches an order.

  ORDER_FIELDS is the positional layout of every order reply; it is mirrored by
  ORDER_FIELDS in engine/orders.py (a test keeps the two equal).
]]
local ORDER_FIELDS = {
  'order_id', 'sale_id', 'user_id', 'serial', 'serial_kind', 'status', 'version',
  'created_ms', 'expires_ms', 'updated_ms', 'price_cents', 'currency',
  'payment_id', 'reason', 'draw', 'ip',
}

-- {code, field1, field2, ...} read straight from the order hash.
local function order_reply(code, order_key)
  local reply = rcall('HMGET', order_key, unpack(ORDER_FIELDS))
  table.insert(reply, 1, code)
  return reply
end

-- The order hash as a table, or nil when it does not exist.
local function load_order(order_key)
  local values = rcall('HMGET', order_key, unpack(ORDER_FIELDS))
  if not values[1] then return nil end
  local order = {}
  for i, field in ipairs(ORDER_FIELDS) do order[field] = values[i] or '' end
  return order
end

-- Append the order's state after a transition to the sale's event stream:
-- the write-behind upserts it keyed by (order_id, version).
local function emit_order(events_key, order_key, event_type, now)
  local values = rcall('HMGET', order_key, unpack(ORDER_FIELDS))
  local args = {'XADD', events_key, '*', 'type', event_type, 'at_ms', now}
  for i, field in ipairs(ORDER_FIELDS) do
    if values[i] then
      args[#args + 1] = field
      args[#args + 1] = values[i]
    end
  end
  rcall(unpack(args))
end
