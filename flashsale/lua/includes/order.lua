--[[
  Order records, inlined into every script that touches an order.

  An order is one msgpack array (cmsgpack) in the sale's orders hash, field =
  order id: ORDER_FIELDS in this order, then the request fingerprint, then (only when
  set) 'h' when the order's address is counted by a hold in another bucket (ip_hold-3,
  docs/design.md "Bucketed drops"; msgspec ignores it: OrderRecord stops before). It is
  mirrored by ORDER_FIELDS in engine/models.py (a test keeps the two equal);
  the write-behind decodes the same array with msgspec. Every transition
  writes the packed record back and appends the SAME bytes to the sale's
  stream as one field named after the event: one HSET, one XADD, nothing
  re-read. The event's time is the order's updated_ms.
  Needs: rcall.

  ORDER_FIELDS = {
    'order_id', 'sale_id', 'user_id', 'serial', 'serial_kind', 'status', 'version',
    'created_ms', 'expires_ms', 'updated_ms', 'price_cents', 'currency',
    'payment_id', 'reason', 'draw', 'ip',
  }
  (documentation only: no table is built at run time)
  The positions alone are includes/record.lua: the purchase includes only them, and
  creates these functions only on the paths that use them (each local function is a
  closure made at every call of the script that reaches it).
]]
--@include record

-- The order as a Lua array, or nil when the sale has no such order.
local function load_order(orders_key, order_id)
  local packed = rcall('HGET', orders_key, order_id)
  if not packed then return nil end
  return cmsgpack.unpack(packed)
end

-- {code, field1, field2, ...} in ORDER_FIELDS order.
local function order_reply(code, o)
  return {code, unpack(o, 1, O_REPLY)}
end

-- Store the record and append it to the stream as one entry {event_type = record}.
local function save_order(orders_key, events_key, o, event_type)
  local packed = cmsgpack.pack(o)
  rcall('HSET', orders_key, o[O_ID], packed)
  rcall('XADD', events_key, '*', event_type, packed)
end
