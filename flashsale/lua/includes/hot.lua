--[[
  The purchase's view of a sale's settings, packed into the meta hash's field
  "hot2" (read with the counters in one short HMGET) as a stream of eleven msgpack
  values, not an array, so it unpacks into locals and builds no table (an 11-element
  array cost a purchase ~4x as much to unpack):
    status, start_ms, end_ms, per_user_limit, per_ip_limit, timeout_ms,
    price_cents, currency, total, assignment, perm_key
  Read as
    local status, start_ms, end_ms, limit, ip_limit, timeout_ms, price, currency,
      total, assignment, perm_key = cmsgpack.unpack(hot)
  Written from the meta fields by create and by every tune (and by a purchase
  that finds it missing: a sale created before it existed, or with the array of the
  form before, "hot", which is then deleted). The current segment is packed the same
  way in "cur2": number, kind, lo, size, offset (the array "cur" before).
  Needs: rcall.
]]
-- Pack the meta fields into "hot2"; returns the packed value, nil when no sale.
local function refresh_hot(meta_key)
  local h = rcall('HMGET', meta_key, 'status', 'start_ms', 'end_ms', 'per_user_limit',
    'per_ip_limit', 'timeout_ms', 'price_cents', 'currency', 'total', 'assignment', 'perm_key')
  if not h[1] then return nil end
  for _, i in ipairs({2, 3, 4, 5, 6, 7, 9}) do h[i] = tonumber(h[i]) end
  local packed = cmsgpack.pack(unpack(h, 1, 11))
  rcall('HSET', meta_key, 'hot2', packed)
  rcall('HDEL', meta_key, 'hot', 'cur') -- the arrays of the form before, if any
  return packed
end
