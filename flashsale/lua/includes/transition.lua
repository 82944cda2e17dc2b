--[[
  What a transition of an existing order needs besides includes/order.lua (which
  the purchase includes alone): the replay check, the refusals, the move itself.
  Needs: includes/order.lua.
]]
-- The order, or the reply that ends the script: {-9} when there is none, {3, ...} when
-- it is already in `done` (the transition was made before: a replay).
local function order_or_reply(orders_key, order_id, done)
  local o = load_order(orders_key, order_id)
  if not o then return nil, {-9, ''} end
  if o[O_STATUS] == done then return nil, {3, unpack(o, 1, O_REPLY)} end
  return o, nil
end

-- {-10, status, fields...}: the order is not in a status the transition accepts.
local function not_pending(o)
  return {-10, o[O_STATUS], unpack(o, 1, O_REPLY)}
end

-- Cancelling is refused once delivery started: {-16} delivering, {-17} delivered or
-- completed (after-sales instead); nil when the order's status allows it.
local function in_delivery(o)
  local status = o[O_STATUS]
  if status == 'delivering' then return {-16, status} end
  if status == 'delivered' or status == 'completed' then return {-17, status} end
  return nil
end

-- Move the order to a new status at `now` (version + 1), with an optional reason.
local function transition(o, status, now, reason)
  o[O_STATUS] = status
  o[O_VERSION] = o[O_VERSION] + 1
  o[O_UPDATED] = tonumber(now)
  if reason then o[O_REASON] = reason end
end
