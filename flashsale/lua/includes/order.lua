--[[
  Order record helpers, inlined into every script that touches an order.

  ORDER_FIELDS is the positional layout of every order reply; it is mirrored by
  ORDER_FIELDS in engine/models.py (a test keeps the two equal). Scripts keep
  the order as a Lua table, change it, write the changed fields, and build the
  event and the reply from the table: no re-read of what they just wrote.
]]
local ORDER_FIELDS = {
  'order_id', 'sale_id', 'user_id', 'serial', 'serial_kind', 'status', 'version',
  'created_ms', 'expires_ms', 'updated_ms', 'price_cents', 'currency',
  'payment_id', 'reason', 'draw', 'ip',
}

-- The order hash as a table, or nil when it does not exist.
local function load_order(order_key)
  local values = rcall('HMGET', order_key, unpack(ORDER_FIELDS))
  if not values[1] then return nil end
  local order = {}
  for i, field in ipairs(ORDER_FIELDS) do order[field] = values[i] or '' end
  return order
end

-- {code, field1, field2, ...} in ORDER_FIELDS order.
local function order_reply(code, order)
  local reply = {code}
  for i, field in ipairs(ORDER_FIELDS) do reply[i + 1] = order[field] end
  return reply
end

-- Append the order's state after a transition to the sale's event stream: the
-- write-behind upserts it keyed by (order_id, version). Empty fields are left out.
local function emit_order(events_key, order, event_type, now)
  local args = {'XADD', events_key, '*', 'type', event_type, 'at_ms', now}
  for _, field in ipairs(ORDER_FIELDS) do
    local value = order[field]
    if value ~= '' then
      args[#args + 1] = field
      args[#args + 1] = value
    end
  end
  rcall(unpack(args))
end

-- Write the given fields of the order both to its hash and to the table.
local function update_order(order_key, order, changes)
  local args = {'HSET', order_key}
  for field, value in pairs(changes) do
    order[field] = value
    args[#args + 1] = field
    args[#args + 1] = value
  end
  rcall(unpack(args))
end
