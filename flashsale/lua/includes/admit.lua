--[[
  The checks every new order passes, in this order: idempotent replay, sale window and
  status, per-user limit, per-IP limit. Inline code, not a function (the purchase's hot
  path): it returns from the including script with the refusal. Shared by purchase-10
  (which then draws a serial) and place-8 (which is given one, engine/buckets.py).
  Needs: rcall, meta_key, buyers_key, ips_key, orders_key, idem_key, user, ip, ip_mode,
  now, has_idem, fingerprint, order_id; includes record, live (order and live_ids are
  included inside the branches that use them: no function is made on the way to a sale).
  ip_mode (docs/design.md "Bucketed drops", per-IP limit): '' the address is checked and
  counted here; 'h' a hold in the address's IP home bucket counts it (ip_hold-3): not
  here; 'o' as '' while the IP limit is off, but {-20} when it is on (the engine skipped
  the hold believing it off); a number: the IP home refused at that limit (answered
  after the replay, window and per-user checks, as if checked here). Leaves: m (meta's hot2,
  drawn, reserved, cur2), the settings unpacked from hot2 into locals (includes/hot.lua:
  status ... perm_key), live_field, live.
]]
if has_idem then
  local remembered = rcall('GET', idem_key)
  if remembered then
    --@include order
    local o = load_order(orders_key, remembered)
    if not o or o[O_FINGERPRINT] ~= fingerprint then return {-8, remembered} end
    return order_reply(2, o)
  end
end

local m = rcall('HMGET', meta_key, 'hot2', 'drawn', 'reserved', 'cur2')
local hot = m[1]
if not hot then -- a sale created before "hot2" existed (or no sale)
  --@include hot
  hot = refresh_hot(meta_key)
  if not hot then return {-1, ''} end
end
local status, start_ms, end_ms, limit, ip_limit, timeout_ms, price, currency, total,
  assignment, perm_key = cmsgpack.unpack(hot)
if status == 'closed' or now >= end_ms then return {-4, ''} end
if status == 'paused' then return {-3, ''} end
if status ~= 'open' or now < start_ms then return {-2, ''} end

local live_field = 'l:' .. user
local live = rcall('HGET', buyers_key, live_field) or ''
if #live >= limit * SUFFIX then
  --@include live_ids
  local reply = {-6, limit}
  for _, id in ipairs(live_ids(live, string.sub(order_id, 1, -SUFFIX - 1), 10)) do reply[#reply + 1] = id end
  return reply
end
if ip_mode == '' or ip_mode == 'o' then
  if ip_limit > 0 then
    if ip_mode == 'o' then return {-20, ''} end
    if ip ~= '' and tonumber(rcall('HGET', ips_key, ip) or '0') >= ip_limit then
      return {-7, ip_limit}
    end
  end
elseif ip_mode ~= 'h' then
  return {-7, tonumber(ip_mode)}
end
