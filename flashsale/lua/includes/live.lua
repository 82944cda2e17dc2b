--[[
  A buyer's live orders, in the sale's buyers hash, read by the purchase
  script in one HGET whatever the buyer's history:

    "l:<user>"  the live orders (holding a serial): their 20-hex id suffixes,
                concatenated; the count is the length / 20
    "h:<user>"  the buyer's released orders, the same way (history only: no
                purchase or refusal reads it)

  An order id is "<sale_id>.<20 hex>", so the suffix names it within the sale.
  Needs: rcall. (release.lua moves an order from live to history.)
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
