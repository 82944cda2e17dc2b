--[[
  A buyer's live orders, in the sale's buyers hash, read by the purchase
  script in one HGET whatever the buyer's history:

    "l:<user>"  the live orders (holding a serial): their 20-hex id suffixes,
                concatenated; the count is the length / 20
    "h:<user>"  the buyer's released orders, the same way (history only: no
                purchase or refusal reads it)

  An order id is "<sale_id>.<20 hex>", so the suffix names it within the sale.
  Needs: rcall, buyers_key, sale_id_prefix (sale_id .. '.').
]]
local SUFFIX = 20

-- The live order ids of `user`, at most `max` of them, newest first.
local function live_ids(live, prefix, max)
  local ids = {}
  for at = #live - SUFFIX + 1, 1, -SUFFIX do
    ids[#ids + 1] = prefix .. string.sub(live, at, at + SUFFIX - 1)
    if #ids >= max then break end
  end
  return ids
end

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
