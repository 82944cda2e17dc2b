--[[
  A buyer's live orders, in the sale's buyers hash, read by the purchase
  script in one HGET whatever the buyer's history:

    "l:<user>"  the live orders (holding a serial): their 20-hex id suffixes,
                concatenated; the count is the length / 20
    "h:<user>"  the buyer's released orders, the same way (history only: no
                purchase or refusal reads it)

  An order id is "<sale_id>.<20 hex>", so the suffix names it within the sale.
  Needs: rcall. (release.lua moves an order from live to history; live_ids.lua lists
  them, included where a refusal names them.)
]]
local SUFFIX = 20
