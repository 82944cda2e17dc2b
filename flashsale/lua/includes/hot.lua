--[[
  The purchase's view of a sale's settings, packed into the meta hash's field
  "hot" (one msgpack array, read with the counters in one short HMGET):
    {status, start_ms, end_ms, per_user_limit, per_ip_limit, timeout_ms,
     price_cents, currency, total, assignment, perm_key}
  Written from the meta fields by create and by every tune (and by a purchase
  that finds it missing: a sale created before it existed). The current
  segment is packed the same way in "cur": {number, kind, lo, size, offset}.
  Needs: rcall.
]]
-- Pack the meta fields into "hot"; returns the packed value, nil when no sale.
local function refresh_hot(meta_key)
  local h = rcall('HMGET', meta_key, 'status', 'start_ms', 'end_ms', 'per_user_limit',
    'per_ip_limit', 'timeout_ms', 'price_cents', 'currency', 'total', 'assignment', 'perm_key')
  if not h[1] then return nil end
  for _, i in ipairs({2, 3, 4, 5, 6, 7, 9}) do h[i] = tonumber(h[i]) end
  local packed = cmsgpack.pack(h)
  rcall('HSET', meta_key, 'hot', packed)
  return packed
end
